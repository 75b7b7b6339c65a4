// Writes test/fixtures/quant/<type>.json: random blocks of each GGML format with the floats the
// native llama.cpp ggml dequantizes them to (type_traits->to_float), and random activations with
// the Q8_K blocks ggml's quantize_row_q8_K_ref makes of them. Built and run by quant-fixtures.sh
// against the peer build; the tests only read the committed JSON.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "ggml-cpu.h"

// ggml-quants.h is internal to ggml; its reference Q8_K quantizer is exported from ggml-base.
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}
static float next_unit(void) { return (float)(next_u32() & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f; }

static void write_b64(FILE *f, const uint8_t *p, size_t n) {
  static const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    fputc(tbl[(v >> 18) & 63], f);
    fputc(tbl[(v >> 12) & 63], f);
    fputc(i + 1 < n ? tbl[(v >> 6) & 63] : '=', f);
    fputc(i + 2 < n ? tbl[v & 63] : '=', f);
  }
}

// Byte offsets of the f16 scale fields of one block: random bytes there could be NaN or huge.
struct format {
  const char *name;
  enum ggml_type type;
  int f16_offsets[3];
  int n_f16;
};

static const struct format formats[] = {
    {"q4_0", GGML_TYPE_Q4_0, {0}, 1},
    {"q4_1", GGML_TYPE_Q4_1, {0, 2}, 2},
    {"q5_0", GGML_TYPE_Q5_0, {0}, 1},
    {"q5_1", GGML_TYPE_Q5_1, {0, 2}, 2},
    {"q8_0", GGML_TYPE_Q8_0, {0}, 1},
    {"q4_k", GGML_TYPE_Q4_K, {0, 2}, 2},
    {"q5_k", GGML_TYPE_Q5_K, {0, 2}, 2},
    {"q6_k", GGML_TYPE_Q6_K, {208}, 1},
};

// Written after q8_k.json, so adding them left the fixtures above byte-identical.
static const struct format more_formats[] = {
    {"iq4_nl", GGML_TYPE_IQ4_NL, {0}, 1},
    {"iq4_xs", GGML_TYPE_IQ4_XS, {0}, 1},
    {"q3_k", GGML_TYPE_Q3_K, {108}, 1},
    {"q2_k", GGML_TYPE_Q2_K, {80, 82}, 2},
    {"iq2_xxs", GGML_TYPE_IQ2_XXS, {0}, 1},
    {"bf16", GGML_TYPE_BF16, {0}, 0},
};

static void emit_format(const char *dir, const struct format *fm) {
  const int64_t blck = ggml_blck_size(fm->type);
  const size_t bsize = ggml_type_size(fm->type);
  // A float type (blck 1) gets 256 values, all converted by ggml (x is written too: the rounding
  // of activations to it is checked against ggml's); a block type one quantized block and
  // random-bit blocks.
  const int n_blocks = blck == 256 ? 3 : blck == 1 ? 256 : 6;
  const int64_t n = blck * n_blocks;
  uint8_t *bytes = calloc(n_blocks, bsize);
  float *x = malloc(n * sizeof(float));
  float *y = malloc(n * sizeof(float));
  for (int64_t i = 0; i < n; i++) x[i] = next_unit() * 2.0f;
  if (blck == 1) {
    // Halfway cases, tiny and huge values, infinities: where rounding to a short float can go wrong.
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x3f80ffffu, 0x00000001u, 0x80000001u,
                                0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u, 0x00800000u, 0x0};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) memcpy(&x[i], &special[i], 4);
    ggml_quantize_chunk(fm->type, x, bytes, 0, 1, n, NULL);
  } else {
    // Block 0 as llama-quantize would make it (the IQ formats that need an importance matrix
    // are all random bits), the others random bits with sane scales.
    if (!ggml_quantize_requires_imatrix(fm->type)) ggml_quantize_chunk(fm->type, x, bytes, 0, 1, blck, NULL);
    else for (size_t i = 0; i < bsize; i++) bytes[i] = (uint8_t)next_u32();
    for (size_t i = bsize; i < bsize * n_blocks; i++) bytes[i] = (uint8_t)next_u32();
  }
  for (int b = ggml_quantize_requires_imatrix(fm->type) ? 0 : 1; b < n_blocks && blck > 1; b++) {
    for (int k = 0; k < fm->n_f16; k++) {
      ggml_fp16_t h = ggml_fp32_to_fp16(next_unit() * 0.01f);
      memcpy(bytes + b * bsize + fm->f16_offsets[k], &h, 2);
    }
  }
  ggml_get_type_traits(fm->type)->to_float(bytes, y, n);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.json", dir, fm->name);
  FILE *f = fopen(path, "w");
  if (!f) { perror(path); exit(1); }
  fprintf(f, "{\"type\":\"%s\",\"ggml_type\":%d,\"n\":%lld,\"bytes\":\"", fm->name, (int)fm->type, (long long)n);
  write_b64(f, bytes, bsize * n_blocks);
  fprintf(f, "\",\"floats\":\"");
  write_b64(f, (const uint8_t *)y, n * sizeof(float));
  if (blck == 1) {
    fprintf(f, "\",\"x\":\"");
    write_b64(f, (const uint8_t *)x, n * sizeof(float));
  }
  fprintf(f, "\"}\n");
  fclose(f);
  free(bytes); free(x); free(y);
}

static void emit_q8_k(const char *dir) {
  const int n_blocks = 3;
  const int64_t n = 256 * n_blocks;
  float *x = malloc(n * sizeof(float));
  for (int64_t i = 0; i < n; i++) x[i] = next_unit() * 3.0f;
  // Block 1: the largest magnitude negative; block 2: values on exact halves of the grid.
  x[256 + 17] = -5.0f;
  x[512] = 127.0f;
  for (int j = 1; j < 64; j++) x[512 + j] = (float)j - 31.5f;
  const size_t bsize = ggml_type_size(GGML_TYPE_Q8_K);
  uint8_t *bytes = calloc(n_blocks, bsize);
  quantize_row_q8_K_ref(x, bytes, n);
  char path[4096];
  snprintf(path, sizeof path, "%s/q8_k.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) { perror(path); exit(1); }
  fprintf(f, "{\"type\":\"q8_k\",\"ggml_type\":15,\"n\":%lld,\"block_bytes\":%zu,\"x\":\"", (long long)n, bsize);
  write_b64(f, (const uint8_t *)x, n * sizeof(float));
  fprintf(f, "\",\"bytes\":\"");
  write_b64(f, bytes, bsize * n_blocks);
  fprintf(f, "\"}\n");
  fclose(f);
  free(x); free(bytes);
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]); return 2; }
  ggml_cpu_init();
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) emit_format(argv[1], &formats[i]);
  emit_q8_k(argv[1]);
  for (size_t i = 0; i < sizeof more_formats / sizeof more_formats[0]; i++) emit_format(argv[1], &more_formats[i]);
  return 0;
}
