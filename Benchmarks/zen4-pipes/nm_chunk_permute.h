/* The chunk-permute 2:4 prototype (nm_chunk_permute.c): repack of an nm.h 2:4 pack and its GEMM. */
#include <stddef.h>
#include <stdint.h>
typedef struct proto_pack proto_pack;
proto_pack *proto_make(const float *vals, const void *idx, ptrdiff_t n, ptrdiff_t k);
void proto_gemm(const proto_pack *pp, const float *bias, const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m);
