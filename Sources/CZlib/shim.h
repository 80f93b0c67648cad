#ifndef SPARSESERVE_CZLIB_SHIM_H
#define SPARSESERVE_CZLIB_SHIM_H
#include <zlib.h>
/* deflateInit2/inflateInit2 are macros; these wrappers make them callable from Swift.
   windowBits: 15 = zlib (RFC 1950, "deflate" on the wire), 31 = gzip, 47 = inflate either. */
static inline int czlib_deflate_init(z_stream *s, int level, int windowBits) {
    return deflateInit2(s, level, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY);
}
static inline int czlib_inflate_init(z_stream *s, int windowBits) {
    return inflateInit2(s, windowBits);
}
#endif
