// MiniLM-like stack of 24 distinct layers (6 x QKV 384->1152, out 384->384, up 384->1536, down
// 1536->384; ~42 MB dense fp32, ~23 MB 2:4), so weights come from L3 / memory as in the server,
// M rows (default 14), 2 threads (a spinning hand-off per layer): dense split by halves of N,
// 2:4 split by token rows (8 | rest) or by halves of N. Prints the best of 30 passes per variant,
// 4 rounds. Not part of the package build. From the repository root (x86-64 with AVX-512):
//   mkdir -p /tmp/k && for f in Sources/CSparseKernels/*.c; do
//     clang -O2 -ISources/CSparseKernels/include -c "$PWD/$f" -o /tmp/k/$(basename $f .c).o; done
//   ar rcs /tmp/k/libk.a /tmp/k/*.o
//   clang -O2 -ISources/CSparseKernels/include Benchmarks/zen4-pipes/nm_stack.c /tmp/k/libk.a -lm -lpthread -o /tmp/nm-stack
//   /tmp/nm-stack 14
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
#include "dense.h"
#include "nm.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static float frand(void){return (float)rand()/(float)RAND_MAX*2-1;}
typedef struct {ptrdiff_t n,k; float *w,*v; void *idx;} mat;
static mat ms[24]; static int M, mode; static float *x,*y; static atomic_int go, done, idx;
static void work(int part, int i){ mat*m=&ms[i];
  if(mode==0){ ptrdiff_t h=(m->n/2+15)/16*16; ptrdiff_t a=part?h:0,b=part?m->n:h; ss_dense_gemm_cols_isa(SS_ISA_AVX512,m->w,NULL,m->n,m->k,x,m->k,y,m->n,M,SS_ACT_NONE,a,b);}
  else if(mode==1){ int r0=part?8:0, r1=part?M:8; ss_nm_gemm_isa(SS_ISA_AVX512,m->v,m->idx,2,4,NULL,m->n,m->k,x+r0*m->k,m->k,y+r0*m->n,m->n,r1-r0,SS_ACT_NONE);}
  else { ptrdiff_t P=(m->n+15)/16, h=P/2; ss_nm_gemm_panels_isa(SS_ISA_AVX512,m->v,m->idx,2,4,NULL,m->n,m->k,x,m->k,y,m->n,M,SS_ACT_NONE,part?h:0,part?P:h,0);}
}
static void* worker(void*_){ int seen=0; for(;;){ int g; while((g=atomic_load(&go))==seen) {} if(g<0)return 0; seen=g; work(1,atomic_load(&idx)); atomic_fetch_add(&done,1);} }
int main(int argc,char**argv){M=argc>1?atoi(argv[1]):14; ptrdiff_t shp[4][2]={{1152,384},{384,384},{1536,384},{384,1536}};
 for(int l=0;l<6;l++)for(int j=0;j<4;j++){mat*m=&ms[l*4+j]; m->n=shp[j][0]; m->k=shp[j][1];
  m->w=aligned_alloc(64,m->n*m->k*4); for(ptrdiff_t i=0;i<m->n*m->k;i++) m->w[i]=((i%4)<2)?frand():0;
  m->v=aligned_alloc(64,ss_nm_value_count(m->n,m->k,2,4)*4+64); m->idx=aligned_alloc(64,ss_nm_index_count(m->n,m->k,2,4)*4+64);
  ss_nm_pack(m->w,m->n,m->k,m->k,2,4,m->v,m->idx);}
 x=aligned_alloc(64,M*1536*4); y=aligned_alloc(64,M*1536*4); for(int i=0;i<M*1536;i++)x[i]=frand();
 pthread_t t; pthread_create(&t,0,worker,0); int gen=0;
 for(int round=0;round<4;round++){ for(mode=0;mode<3;mode++){ double best=1e9;
   for(int rep=0;rep<30;rep++){double t0=now(); for(int i=0;i<24;i++){ atomic_store(&done,0); gen++; atomic_store(&idx,i); atomic_store(&go, gen);
       work(0,i); while(atomic_load(&done)==0); }
     double d=now()-t0; if(d<best)best=d;}
   printf("%s %.0f us  ", (const char*[]){"dense-2thr","nm-rows","nm-panels"}[mode], best*1e6);} printf("\n");}
 atomic_store(&go,-1); pthread_join(t,0);
}
