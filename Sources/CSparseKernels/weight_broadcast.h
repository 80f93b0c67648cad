/*
 * The weight-broadcast kernels of wb_body.h for AVX-512 (suffix 512) and AVX2 (suffix 256).
 * Private to nm.c and csr.c.
 */
#ifndef SPARSESERVE_WEIGHT_BROADCAST_H
#define SPARSESERVE_WEIGHT_BROADCAST_H
#include "internal.h"
#ifdef SS_X86
#define WB_ISA 512
#include "wb_body.h"
#undef WB_ISA
#define WB_ISA 256
#include "wb_body.h"
#undef WB_ISA
#endif
#endif
