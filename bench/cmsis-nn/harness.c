/* CMSIS-NN int8 kernel instruction counts on Cortex-M4F under QEMU (-icount shift=0), per layer:
 * the FACTS §7 anchor shapes and every layer of the whole models of bench/device.sh (the MLPerf
 * Tiny resnet8 on 3x32x32, ds-cnn on 1x49x10, mobilenet-v1:0.25 on 3x96x96, and the demo MLP
 * 784-256-128-10), so a model's CMSIS-NN total is the sum of its layers' counts (TFLite-Micro's
 * interpreter overhead is not included: the sum is what CMSIS-NN's kernels alone execute).
 * Adapted from ../../../shared/anchors/cmsis-nn/c/harness.c (same data recipe, counting and
 * reference check) with two more layer kinds: ADD (arm_elementwise_add_s8, TFLite ADD's
 * quantization) and POOL (arm_avgpool_s8; a global mean is an average pool over the whole map).
 * Run by ./run.sh, which writes counts.txt. Original header:
 *
 * CMSIS-NN int8 kernel instruction counts on Cortex-M4F under QEMU (-icount shift=0).
 * Data is generated in a canonical logical order (activations CHW, conv weights OIHW, depthwise
 * weights C,KH,KW, FC weights [out][in]) by xorshift32 and scattered into CMSIS-NN's NHWC/OHWI
 * layouts, so ../rust-m4 can generate the same tensors in its CHW/OIHW layouts; the output
 * checksum (FNV-1a over the output read in CHW order) is therefore comparable between the two. */
#include <stdint.h>
#include <string.h>
#include "arm_nnfunctions.h"

void sh_write0(const char *s);
extern volatile uint32_t systick_wraps;

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04)
#define PENDSTSET (1u << 26)
#define PENDSTCLR (1u << 25)
#define RELOAD 0xFFFFFFu
#define INSNS_PER_TICK 40u /* -icount shift=0: 1 ns per insn; SysTick core clock 25 MHz = 40 ns */

#define BARRIER() __asm volatile("" ::: "memory")

static void systick_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x5; /* enable, core clock */
    while (SYST_CVR == 0) {}
    SCB_ICSR = PENDSTCLR;
    systick_wraps = 0;
    SYST_CSR = 0x7; /* + wrap interrupt */
}

/* Ticks since systick_start(), 64-bit, exact across wraps. */
static uint64_t ticks(void)
{
    for (;;) {
        uint32_t w = systick_wraps;
        uint32_t pb = SCB_ICSR & PENDSTSET;
        uint32_t cur = SYST_CVR;
        uint32_t pa = SCB_ICSR & PENDSTSET;
        if (systick_wraps != w || pb != pa) continue;
        return (uint64_t)(w + (pb ? 1u : 0u)) * (RELOAD + 1ull) + (RELOAD - cur);
    }
}

/* ---- output ---- */
static char line[256];
static int pos;
static void put_s(const char *s) { while (*s && pos < (int)sizeof line - 1) line[pos++] = *s++; }
static void put_u(uint64_t v)
{
    char b[24]; int n = 0;
    do { b[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) line[pos < (int)sizeof line - 1 ? pos++ : pos] = b[--n];
}
static void put_i(int64_t v) { if (v < 0) { put_s("-"); put_u((uint64_t)(-v)); } else put_u((uint64_t)v); }
static void put_x(uint32_t v)
{
    for (int i = 7; i >= 0; i--) { char c = "0123456789abcdef"[(v >> (4 * i)) & 0xF]; line[pos++] = c; }
}
static void flush(void) { line[pos++] = '\n'; line[pos] = 0; sh_write0(line); pos = 0; }

/* ---- data ---- */
static uint32_t rng;
static uint32_t next_u32(void) { uint32_t x = rng; x ^= x << 13; x ^= x >> 17; x ^= x << 5; return rng = x; }
static int8_t rnd8(void) { return (int8_t)(next_u32() >> 24); }
static int ilog2(uint32_t v) { int r = -1; while (v) { v >>= 1; r++; } return r; }

enum kind { FC, CONV, DW, ADD, POOL };
typedef struct { const char *name; enum kind kind; int ci, co, h, w, kh, kw, sy, sx, py, px, oh, ow; } layer_t;

static const layer_t layers[] = {
    /* name, kind, ci, co, h, w, kh, kw, sy, sx, py (top), px (left), oh, ow */
    {"fc 784->256", FC, 784, 256, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"fc 256->128", FC, 256, 128, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"fc 128->10", FC, 128, 10, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"fc 640->128", FC, 640, 128, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"fc 128->128", FC, 128, 128, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"conv3x3 s1 1->32 @28x28", CONV, 1, 32, 28, 28, 3, 3, 1, 1, 1, 1, 28, 28},
    {"conv3x3 s1 32->64 @14x14", CONV, 32, 64, 14, 14, 3, 3, 1, 1, 1, 1, 14, 14},
    {"conv3x3 s1 3->16 @32x32", CONV, 3, 16, 32, 32, 3, 3, 1, 1, 1, 1, 32, 32},
    {"conv3x3 s1 16->16 @32x32", CONV, 16, 16, 32, 32, 3, 3, 1, 1, 1, 1, 32, 32},
    {"conv3x3 s1 32->32 @16x16", CONV, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, 16, 16},
    {"conv3x3 s1 64->64 @8x8", CONV, 64, 64, 8, 8, 3, 3, 1, 1, 1, 1, 8, 8},
    {"conv3x3 s2 16->32 @32x32->16x16", CONV, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 16, 16},
    {"conv3x3 s2 32->64 @16x16->8x8", CONV, 32, 64, 16, 16, 3, 3, 2, 2, 1, 1, 8, 8},
    {"conv1x1 s1 64->64 @25x5", CONV, 64, 64, 25, 5, 1, 1, 1, 1, 0, 0, 25, 5},
    {"conv1x1 s2 16->32 @32x32->16x16", CONV, 16, 32, 32, 32, 1, 1, 2, 2, 0, 0, 16, 16},
    {"dw3x3 s1 64ch @25x5", DW, 64, 64, 25, 5, 3, 3, 1, 1, 1, 1, 25, 5},
    {"dw3x3 s1 32ch @48x48", DW, 32, 32, 48, 48, 3, 3, 1, 1, 1, 1, 48, 48},
    {"dw3x3 s1 64ch @24x24", DW, 64, 64, 24, 24, 3, 3, 1, 1, 1, 1, 24, 24},
    {"dw3x3 s2 32ch @48x48->24x24", DW, 32, 32, 48, 48, 3, 3, 2, 2, 1, 1, 24, 24},
    {"conv10x4 s2 1->64 @49x10->25x5", CONV, 1, 64, 49, 10, 10, 4, 2, 2, 4, 1, 25, 5},
    /* resnet8 (3x32x32), the op order of the core's graph */
    {"resnet8/0 conv3x3 s1 3->16 @32x32", CONV, 3, 16, 32, 32, 3, 3, 1, 1, 1, 1, 32, 32},
    {"resnet8/1 conv3x3 s1 16->16 @32x32", CONV, 16, 16, 32, 32, 3, 3, 1, 1, 1, 1, 32, 32},
    {"resnet8/2 conv3x3 s1 16->16 @32x32", CONV, 16, 16, 32, 32, 3, 3, 1, 1, 1, 1, 32, 32},
    {"resnet8/3 add 16x32x32", ADD, 16, 16, 32, 32, 1, 1, 1, 1, 0, 0, 32, 32},
    {"resnet8/4 conv3x3 s2 16->32 @32x32", CONV, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 16, 16},
    {"resnet8/5 conv3x3 s1 32->32 @16x16", CONV, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, 16, 16},
    {"resnet8/6 conv1x1 s2 16->32 @32x32", CONV, 16, 32, 32, 32, 1, 1, 2, 2, 0, 0, 16, 16},
    {"resnet8/7 add 32x16x16", ADD, 32, 32, 16, 16, 1, 1, 1, 1, 0, 0, 16, 16},
    {"resnet8/8 conv3x3 s2 32->64 @16x16", CONV, 32, 64, 16, 16, 3, 3, 2, 2, 1, 1, 8, 8},
    {"resnet8/9 conv3x3 s1 64->64 @8x8", CONV, 64, 64, 8, 8, 3, 3, 1, 1, 1, 1, 8, 8},
    {"resnet8/10 conv1x1 s2 32->64 @16x16", CONV, 32, 64, 16, 16, 1, 1, 2, 2, 0, 0, 8, 8},
    {"resnet8/11 add 64x8x8", ADD, 64, 64, 8, 8, 1, 1, 1, 1, 0, 0, 8, 8},
    {"resnet8/12 mean 64x8x8", POOL, 64, 64, 8, 8, 8, 8, 8, 8, 0, 0, 1, 1},
    {"resnet8/13 fc 64->10", FC, 64, 10, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    /* ds-cnn (1x49x10) */
    {"ds-cnn/0 conv10x4 s2 1->64 @49x10", CONV, 1, 64, 49, 10, 10, 4, 2, 2, 4, 1, 25, 5},
    {"ds-cnn/1 dw3x3 s1 64ch @25x5", DW, 64, 64, 25, 5, 3, 3, 1, 1, 1, 1, 25, 5},
    {"ds-cnn/2 conv1x1 s1 64->64 @25x5", CONV, 64, 64, 25, 5, 1, 1, 1, 1, 0, 0, 25, 5},
    {"ds-cnn/3 dw3x3 s1 64ch @25x5", DW, 64, 64, 25, 5, 3, 3, 1, 1, 1, 1, 25, 5},
    {"ds-cnn/4 conv1x1 s1 64->64 @25x5", CONV, 64, 64, 25, 5, 1, 1, 1, 1, 0, 0, 25, 5},
    {"ds-cnn/5 dw3x3 s1 64ch @25x5", DW, 64, 64, 25, 5, 3, 3, 1, 1, 1, 1, 25, 5},
    {"ds-cnn/6 conv1x1 s1 64->64 @25x5", CONV, 64, 64, 25, 5, 1, 1, 1, 1, 0, 0, 25, 5},
    {"ds-cnn/7 dw3x3 s1 64ch @25x5", DW, 64, 64, 25, 5, 3, 3, 1, 1, 1, 1, 25, 5},
    {"ds-cnn/8 conv1x1 s1 64->64 @25x5", CONV, 64, 64, 25, 5, 1, 1, 1, 1, 0, 0, 25, 5},
    {"ds-cnn/9 avgpool 64x25x5", POOL, 64, 64, 25, 5, 25, 5, 25, 5, 0, 0, 1, 1},
    {"ds-cnn/11 fc 64->12", FC, 64, 12, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    /* mobilenet-v1:0.25 (3x96x96) */
    {"mobilenet/0 conv3x3 s2 3->8 @96x96", CONV, 3, 8, 96, 96, 3, 3, 2, 2, 1, 1, 48, 48},
    {"mobilenet/1 dw3x3 s1 8ch @48x48", DW, 8, 8, 48, 48, 3, 3, 1, 1, 1, 1, 48, 48},
    {"mobilenet/2 conv1x1 s1 8->16 @48x48", CONV, 8, 16, 48, 48, 1, 1, 1, 1, 0, 0, 48, 48},
    {"mobilenet/3 dw3x3 s2 16ch @48x48", DW, 16, 16, 48, 48, 3, 3, 2, 2, 1, 1, 24, 24},
    {"mobilenet/4 conv1x1 s1 16->32 @24x24", CONV, 16, 32, 24, 24, 1, 1, 1, 1, 0, 0, 24, 24},
    {"mobilenet/5 dw3x3 s1 32ch @24x24", DW, 32, 32, 24, 24, 3, 3, 1, 1, 1, 1, 24, 24},
    {"mobilenet/6 conv1x1 s1 32->32 @24x24", CONV, 32, 32, 24, 24, 1, 1, 1, 1, 0, 0, 24, 24},
    {"mobilenet/7 dw3x3 s2 32ch @24x24", DW, 32, 32, 24, 24, 3, 3, 2, 2, 1, 1, 12, 12},
    {"mobilenet/8 conv1x1 s1 32->64 @12x12", CONV, 32, 64, 12, 12, 1, 1, 1, 1, 0, 0, 12, 12},
    {"mobilenet/9 dw3x3 s1 64ch @12x12", DW, 64, 64, 12, 12, 3, 3, 1, 1, 1, 1, 12, 12},
    {"mobilenet/10 conv1x1 s1 64->64 @12x12", CONV, 64, 64, 12, 12, 1, 1, 1, 1, 0, 0, 12, 12},
    {"mobilenet/11 dw3x3 s2 64ch @12x12", DW, 64, 64, 12, 12, 3, 3, 2, 2, 1, 1, 6, 6},
    {"mobilenet/12 conv1x1 s1 64->128 @6x6", CONV, 64, 128, 6, 6, 1, 1, 1, 1, 0, 0, 6, 6},
    {"mobilenet/13 dw3x3 s1 128ch @6x6", DW, 128, 128, 6, 6, 3, 3, 1, 1, 1, 1, 6, 6},
    {"mobilenet/14 conv1x1 s1 128->128 @6x6", CONV, 128, 128, 6, 6, 1, 1, 1, 1, 0, 0, 6, 6},
    {"mobilenet/15 dw3x3 s1 128ch @6x6", DW, 128, 128, 6, 6, 3, 3, 1, 1, 1, 1, 6, 6},
    {"mobilenet/16 conv1x1 s1 128->128 @6x6", CONV, 128, 128, 6, 6, 1, 1, 1, 1, 0, 0, 6, 6},
    {"mobilenet/17 dw3x3 s1 128ch @6x6", DW, 128, 128, 6, 6, 3, 3, 1, 1, 1, 1, 6, 6},
    {"mobilenet/18 conv1x1 s1 128->128 @6x6", CONV, 128, 128, 6, 6, 1, 1, 1, 1, 0, 0, 6, 6},
    {"mobilenet/19 dw3x3 s1 128ch @6x6", DW, 128, 128, 6, 6, 3, 3, 1, 1, 1, 1, 6, 6},
    {"mobilenet/20 conv1x1 s1 128->128 @6x6", CONV, 128, 128, 6, 6, 1, 1, 1, 1, 0, 0, 6, 6},
    {"mobilenet/21 dw3x3 s1 128ch @6x6", DW, 128, 128, 6, 6, 3, 3, 1, 1, 1, 1, 6, 6},
    {"mobilenet/22 conv1x1 s1 128->128 @6x6", CONV, 128, 128, 6, 6, 1, 1, 1, 1, 0, 0, 6, 6},
    {"mobilenet/23 dw3x3 s2 128ch @6x6", DW, 128, 128, 6, 6, 3, 3, 2, 2, 1, 1, 3, 3},
    {"mobilenet/24 conv1x1 s1 128->256 @3x3", CONV, 128, 256, 3, 3, 1, 1, 1, 1, 0, 0, 3, 3},
    {"mobilenet/25 dw3x3 s1 256ch @3x3", DW, 256, 256, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3},
    {"mobilenet/26 conv1x1 s1 256->256 @3x3", CONV, 256, 256, 3, 3, 1, 1, 1, 1, 0, 0, 3, 3},
    {"mobilenet/27 mean 256x3x3", POOL, 256, 256, 3, 3, 3, 3, 3, 3, 0, 0, 1, 1},
    {"mobilenet/28 fc 256->2", FC, 256, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    /* the demo MLP (1x28x28; the flatten is free in TFLite-Micro) */
    {"mlp/1 fc 784->256", FC, 784, 256, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"mlp/2 fc 256->128", FC, 256, 128, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"mlp/3 fc 128->10", FC, 128, 10, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
};
#define NLAYERS (int)(sizeof layers / sizeof layers[0])

#define MAX_IN (32 * 48 * 48) /* also 2 x 16x32x32 for ADD */
#define MAX_OUT (32 * 48 * 48)
#define MAX_W (784 * 256)
#define MAX_CO 256
#define MAX_SCRATCH 16384

static int8_t in_buf[MAX_IN] __attribute__((aligned(4)));
static int8_t out_buf[MAX_OUT] __attribute__((aligned(4)));
static int8_t w_buf[MAX_W] __attribute__((aligned(4)));
static int32_t bias[MAX_CO], mult[MAX_CO], shift[MAX_CO];
static int16_t scratch[MAX_SCRATCH / 2] __attribute__((aligned(4)));

#define ZP_IN (-128) /* CMSIS input_offset = -zp_in = 128 */
#define ZP_OUT (-3)  /* CMSIS output_offset = zp_out */


/* ---- plain TFLite-reference arithmetic (double rounding), to check CMSIS-NN's outputs ---- */
static int32_t srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / (1ll << 31));
}
static int32_t rdbpot(int32_t x, int e)
{
    int32_t mask = (int32_t)((1ll << e) - 1), rem = x & mask, thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}
static int8_t requant(int32_t acc, int32_t m, int32_t sh)
{
    int left = sh > 0 ? sh : 0, right = sh > 0 ? 0 : -sh;
    int32_t v = rdbpot(srdhm((int32_t)((uint32_t)acc << left), m), right) + ZP_OUT;
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}
/* Reference output element (o, oy, ox) in the NHWC/OHWI buffers. */
static int8_t ref_out(const layer_t *L, int o, int oy, int ox)
{
    int32_t acc = bias[o];
    if (L->kind == FC) {
        for (int i = 0; i < L->ci; i++) acc += (in_buf[i] - ZP_IN) * w_buf[o * L->ci + i];
        return requant(acc, mult[0], shift[0]);
    }
    for (int ky = 0; ky < L->kh; ky++)
        for (int kx = 0; kx < L->kw; kx++) {
            int iy = oy * L->sy - L->py + ky, ix = ox * L->sx - L->px + kx;
            if (iy < 0 || iy >= L->h || ix < 0 || ix >= L->w) continue;
            const int8_t *px = &in_buf[(iy * L->w + ix) * L->ci];
            if (L->kind == DW)
                acc += (px[o] - ZP_IN) * w_buf[(ky * L->kw + kx) * L->co + o];
            else
                for (int i = 0; i < L->ci; i++) acc += (px[i] - ZP_IN) * w_buf[((o * L->kh + ky) * L->kw + kx) * L->ci + i];
        }
    return requant(acc, mult[o], shift[o]);
}

static void spin(uint32_t n)
{
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

static uint64_t overhead;

static uint64_t measure_spin(uint32_t n)
{
    uint64_t t0 = ticks();
    spin(n);
    uint64_t t1 = ticks();
    return t1 - t0;
}

int main(void)
{
    systick_start();
    /* Overhead of two back-to-back reads (subtracted from every measurement). */
    uint64_t t0 = ticks(); BARRIER(); uint64_t t1 = ticks();
    overhead = t1 - t0;
    put_s("CAL|overhead_ticks|"); put_u(overhead); flush();
    /* Calibration: the loop body is exactly 2 instructions per iteration. */
    static const uint32_t ns[] = {1000000u, 11000000u, 101000000u};
    uint64_t c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = measure_spin(ns[i]);
        put_s("CAL|spin|"); put_u(ns[i]); put_s("|ticks|"); put_u(c[i]);
        put_s("|insns_expected_loop|"); put_u(2ull * ns[i]); flush();
    }
    put_s("CAL|delta_ticks_10M_iters|"); put_u(c[1] - c[0]); put_s("|expected|");
    put_u(2ull * 10000000u / INSNS_PER_TICK); flush();
    put_s("CAL|delta_ticks_100M_iters|"); put_u(c[2] - c[1]); put_s("|expected|");
    put_u(2ull * 90000000u / INSNS_PER_TICK); flush();

    for (int li = 0; li < NLAYERS; li++) {
        const layer_t *L = &layers[li];
        rng = 0x12345678u + 0x9E3779B9u * (uint32_t)(li + 1);
        if (rng == 0) rng = 1;
        const int ci = L->ci, co = L->co, H = L->h, W = L->w, KH = L->kh, KW = L->kw;
        const int OH = L->oh, OW = L->ow;
        /* input, CHW order -> NHWC */
        for (int ch = 0; ch < ci; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) in_buf[(y * W + x) * ci + ch] = rnd8();
        /* weights (ADD: the second input; POOL: none) */
        int fanin;
        if (L->kind == ADD) {
            for (int i = 0; i < ci * H * W; i++) w_buf[i] = rnd8();
            fanin = 1;
        } else if (L->kind == POOL) {
            fanin = 1;
        } else if (L->kind == DW) {
            for (int ch = 0; ch < co; ch++)
                for (int ky = 0; ky < KH; ky++)
                    for (int kx = 0; kx < KW; kx++) w_buf[(ky * KW + kx) * co + ch] = rnd8();
            fanin = KH * KW;
        } else {
            for (int o = 0; o < co; o++)
                for (int i = 0; i < ci; i++)
                    for (int ky = 0; ky < KH; ky++)
                        for (int kx = 0; kx < KW; kx++) w_buf[((o * KH + ky) * KW + kx) * ci + i] = rnd8();
            fanin = ci * KH * KW;
        }
        const int lg = (ilog2((uint32_t)fanin) + 1) / 2;
        for (int o = 0; o < co; o++) bias[o] = (int32_t)(next_u32() >> 19) - 4096;
        if (L->kind == FC) {
            mult[0] = 0x40000000 + (int32_t)((next_u32() >> 2) % 900000000u);
            shift[0] = -(6 + lg + 1);
        } else {
            for (int o = 0; o < co; o++) {
                mult[o] = 0x40000000 + (int32_t)((next_u32() >> 2) % 900000000u);
                shift[o] = -(6 + lg + (o % 3));
            }
        }
        memset(out_buf, 0x55, (size_t)(OH * OW * co));

        const cmsis_nn_dims in_dims = {.n = 1, .h = H, .w = W, .c = ci};
        const cmsis_nn_dims out_dims = {.n = 1, .h = OH, .w = OW, .c = co};
        const cmsis_nn_dims bias_dims = {.n = 1, .h = 1, .w = 1, .c = co};
        const cmsis_nn_per_channel_quant_params pcq = {.multiplier = mult, .shift = shift};
        const cmsis_nn_activation act = {.min = -128, .max = 127};
        cmsis_nn_context ctx = {.buf = scratch, .size = 0};
        int32_t scratch_bytes = 0;
        const char *path = "";
        uint64_t dt[2];
        arm_cmsis_nn_status st = ARM_CMSIS_NN_SUCCESS;
        uint64_t macs;

        for (int rep = 0; rep < 2; rep++) {
            if (L->kind == FC) {
                const cmsis_nn_dims f_dims = {.n = ci, .h = 1, .w = 1, .c = co};
                const cmsis_nn_fc_params fp = {.input_offset = -ZP_IN, .filter_offset = 0, .output_offset = ZP_OUT, .activation = act};
                const cmsis_nn_per_tensor_quant_params ptq = {.multiplier = mult[0], .shift = shift[0]};
                scratch_bytes = arm_fully_connected_s8_get_buffer_size(&f_dims);
                ctx.size = scratch_bytes;
                path = "arm_fully_connected_s8";
                macs = (uint64_t)ci * co;
                uint64_t a = ticks(); BARRIER();
                st = arm_fully_connected_s8(&ctx, &fp, &ptq, &in_dims, in_buf, &f_dims, w_buf, &bias_dims, bias, &out_dims, out_buf);
                BARRIER(); uint64_t b = ticks();
                dt[rep] = b - a;
            } else if (L->kind == CONV) {
                const cmsis_nn_dims f_dims = {.n = co, .h = KH, .w = KW, .c = ci};
                const cmsis_nn_conv_params cp = {.input_offset = -ZP_IN, .output_offset = ZP_OUT,
                    .stride = {.w = L->sx, .h = L->sy}, .padding = {.w = L->px, .h = L->py},
                    .dilation = {.w = 1, .h = 1}, .activation = act};
                scratch_bytes = arm_convolve_wrapper_s8_get_buffer_size(&cp, &in_dims, &f_dims, &out_dims);
                ctx.size = scratch_bytes;
                if (KH == 1 && KW == 1 && L->px == 0 && L->py == 0)
                    path = (L->sx == 1 && L->sy == 1) ? "arm_convolve_1x1_s8_fast" : "arm_convolve_1x1_s8";
                else if (H == 1 && KH == 1 && (L->sx * ci) % 4 == 0)
                    path = "arm_convolve_1_x_n_s8";
                else
                    path = "arm_convolve_s8";
                macs = (uint64_t)OH * OW * co * ci * KH * KW;
                uint64_t a = ticks(); BARRIER();
                st = arm_convolve_wrapper_s8(&ctx, &cp, &pcq, &in_dims, in_buf, &f_dims, w_buf, &bias_dims, bias, &out_dims, out_buf);
                BARRIER(); uint64_t b = ticks();
                dt[rep] = b - a;
            } else if (L->kind == ADD) {
                /* TFLite ADD's quantization (left_shift 20, input multipliers ~2^30, output
                 * multiplier ~2^30 with shift -19), one block of C*H*W values. */
                path = "arm_elementwise_add_s8";
                macs = 0;
                uint64_t a = ticks(); BARRIER();
                st = arm_elementwise_add_s8(in_buf, w_buf, -ZP_IN, 1518500250, -1, 5, 1431655765, -1,
                                            20, out_buf, ZP_OUT, 1288490189, -19, -128, 127, ci * H * W);
                BARRIER(); uint64_t b = ticks();
                dt[rep] = b - a;
            } else if (L->kind == POOL) {
                const cmsis_nn_dims f_dims = {.n = 1, .h = KH, .w = KW, .c = 1};
                const cmsis_nn_pool_params pp = {.stride = {.w = L->sx, .h = L->sy},
                    .padding = {.w = L->px, .h = L->py}, .activation = act};
                scratch_bytes = arm_avgpool_s8_get_buffer_size(OW, ci);
                ctx.size = scratch_bytes;
                path = "arm_avgpool_s8";
                macs = 0;
                uint64_t a = ticks(); BARRIER();
                st = arm_avgpool_s8(&ctx, &pp, &in_dims, in_buf, &f_dims, &out_dims, out_buf);
                BARRIER(); uint64_t b = ticks();
                dt[rep] = b - a;
            } else {
                const cmsis_nn_dims f_dims = {.n = 1, .h = KH, .w = KW, .c = co};
                const cmsis_nn_dw_conv_params dp = {.input_offset = -ZP_IN, .output_offset = ZP_OUT, .ch_mult = 1,
                    .stride = {.w = L->sx, .h = L->sy}, .padding = {.w = L->px, .h = L->py},
                    .dilation = {.w = 1, .h = 1}, .activation = act};
                scratch_bytes = arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &in_dims, &f_dims, &out_dims);
                ctx.size = scratch_bytes;
                path = (KH == 3 && KW == 3 && L->px <= 1 && L->py <= 1) ? "arm_depthwise_conv_3x3_s8" : "arm_depthwise_conv_s8_opt";
                macs = (uint64_t)OH * OW * co * KH * KW;
                uint64_t a = ticks(); BARRIER();
                st = arm_depthwise_conv_wrapper_s8(&ctx, &dp, &pcq, &in_dims, in_buf, &f_dims, w_buf, &bias_dims, bias, &out_dims, out_buf);
                BARRIER(); uint64_t b = ticks();
                dt[rep] = b - a;
            }
            if (scratch_bytes > MAX_SCRATCH) { put_s("ERR|scratch too large"); flush(); return 2; }
        }
        /* checksum: FNV-1a over the output in CHW order */
        uint32_t h = 2166136261u, bad = 0, sat = 0;
        for (int o = 0; o < co; o++)
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) {
                    int8_t v = out_buf[(y * OW + x) * co + o];
                    h ^= (uint8_t)v; h *= 16777619u;
                    if (L->kind != ADD && L->kind != POOL) bad += v != ref_out(L, o, y, x);
                    sat += v == -128 || v == 127;
                }
        put_s("R|"); put_s(L->name); put_s("|"); put_s(path); put_s("|"); put_u(macs); put_s("|");
        put_u((dt[0] - overhead) * INSNS_PER_TICK); put_s("|"); put_u((dt[1] - overhead) * INSNS_PER_TICK);
        put_s("|"); put_i(scratch_bytes); put_s("|"); put_x(h); put_s("|"); put_i(st);
        put_s("|ref_mismatch="); put_u(bad); put_s("|saturated="); put_u(sat); put_s("/"); put_u((uint64_t)co * OH * OW); flush();
        if (st != ARM_CMSIS_NN_SUCCESS) return 3;
    }
    put_s("DONE"); flush();
    return 0;
}
