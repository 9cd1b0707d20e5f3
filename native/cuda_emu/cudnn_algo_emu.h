/*
 * cudnn_algo_emu.h — the cuDNN stand-in's convolution algorithms (cudnn_algo_emu.cc), shared with the convolution
 * calls in vendor_emu.cc: which algorithm of which pass runs on which geometry, the workspace it asks for, and the
 * last algorithm each pass ran (read by the Java tests through latent_emu_cudnn_algo_stats).
 */
#ifndef LATENT_CUDNN_ALGO_EMU_H
#define LATENT_CUDNN_ALGO_EMU_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace lt_cudnn_algo {

/* The three passes: forward (cudnnConvolutionFwdAlgo_t), backward-data (_BwdDataAlgo_t), backward-filter (_BwdFilterAlgo_t). */
enum Op : int { FWD = 0, BWD_DATA = 1, BWD_FILTER = 2 };

/* A convolution's geometry as its (checked) descriptors give it; math = the descriptor's cudnnMathType_t, dtype = x's. */
struct Geom {
    int n, c, h, w, k, r, s, oh, ow, u, v, pad_h, pad_w, dil_h, dil_w, math, dtype;
};

/* CUDNN_CONVOLUTION_*_ALGO_COUNT of op: 8, 6, 7. */
int algo_count(Op op);

/* 0 when the stand-in runs algorithm algo of op on g; else BAD_PARAM (an enum outside op's range) or NOT_SUPPORTED
 * (an algorithm cuDNN has no kernel for on g), with the reason in *why. */
int support(Op op, int algo, const Geom &g, std::string *why);

/* The workspace algorithm algo of op asks for on g (bytes; >= 4 KiB, so a caller that passes none is caught). */
size_t workspace(Op op, int algo, const Geom &g);

/* A convolution call of op ran algo (the hook's "last algorithm"). */
void ran(Op op, int algo);

/* Implemented in vendor_emu.cc (its descriptor checks and error text): the checked geometry of a convolution's
 * descriptors (x, w, conv, y: for the backward passes x = dx, y = dy), or a cuDNN status with the reason recorded. */
int conv_geom(const char *fn, void *handle, void *xd, void *wd, void *cd, void *yd, Geom *g);
int fail(int status, std::string msg);

}  // namespace lt_cudnn_algo

#endif
