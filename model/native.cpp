// Our CPU kernels for decoding, built and loaded by model/native.py on the machine that runs
// them (-march=native, so the #if below picks AVX-512, AVX2 or plain C++ for this CPU).
//
// int8_linear: weight-only int8 products, y[r, n] = s[n] * sum_k x[r, k] w[n, k]. The weight is in blocks of 16
// outputs by 16 inputs, [N/16, K/16, 16, 16]: each thread reads one contiguous stream, which
// the hardware prefetcher follows; torch's kernel reads 4 rows at a stride of K and reached
// 40% of the memory bandwidth here against 90-100% for this layout (2-core EPYC, a whole
// Qwen2.5-0.5B step of weights). Activations and sums stay float32: the same arithmetic as
// float32 weights of the int8 values, only the order of the additions differs.
//
// rms_norm, silu_mul, decode_attention: a decode step's small ops, each one call instead of
// torch's several (its CPU rms_norm alone is mean, pow, add, rsqrt, mul: 49 norms a step took
// 2.8 ms of Qwen2.5-0.5B's 32), float32 only.
//
// int4_linear: the same with four bits a weight, y[r, n] = sum_g d[n, g] * sum_k x[r, k] q[n, k]
// + m[n, g] * sum_k x[r, k] over groups g of 32 inputs, d and m float16 (GGUF's Q4_1: a 4-bit
// GGUF's own blocks come back exactly). Blocks of 16 outputs by 32 inputs, 16 bytes an output:
// byte j holds input j (low nibble) and input 16 + j (high); beside them d and m of the 16.
//
// Not here: prompts (many rows at once are compute-bound: model/quant.py turns the weight back
// into floats for one matmul; attention of many queries stays torch's), activation
// quantization, anything but the CPU.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdint>
#include <vector>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t OUT = 16;  // outputs per block
constexpr int64_t IN = 16;   // inputs per chunk: a chunk is OUT * IN = 256 bytes
constexpr int64_t AHEAD = 16 * OUT * IN;  // bytes prefetched ahead of the chunk being read

// acc[i] = sum_k x[k] * q[chunk k / IN][i][k % IN] for one block of OUT outputs.
inline void dot_block(const float* x, const int8_t* q, int64_t in, float* acc) {
#if defined(__AVX512F__)
  __m512 a[OUT];
  for (auto& v : a) v = _mm512_setzero_ps();
  for (int64_t k = 0; k < in; k += IN, q += OUT * IN) {
    for (int line = 0; line < OUT * IN; line += 64) _mm_prefetch((const char*)q + AHEAD + line, _MM_HINT_T0);
    const __m512 xv = _mm512_loadu_ps(x + k);
    for (int i = 0; i < OUT; ++i) {
      const __m128i w = _mm_loadu_si128((const __m128i*)(q + i * IN));
      a[i] = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(w)), a[i]);
    }
  }
  for (int i = 0; i < OUT; ++i) acc[i] = _mm512_reduce_add_ps(a[i]);
#elif defined(__AVX2__)
  // 16 ymm registers: half a block's outputs at a time, each over the whole input.
  for (int half = 0; half < OUT; half += OUT / 2) {
    __m256 a[OUT / 2];
    for (auto& v : a) v = _mm256_setzero_ps();
    const int8_t* p = q + half * IN;
    for (int64_t k = 0; k < in; k += IN, p += OUT * IN) {
      _mm_prefetch((const char*)p + AHEAD, _MM_HINT_T0);
      _mm_prefetch((const char*)p + AHEAD + 64, _MM_HINT_T0);
      const __m256 lo = _mm256_loadu_ps(x + k), hi = _mm256_loadu_ps(x + k + 8);
      for (int i = 0; i < OUT / 2; ++i) {
        const __m128i w = _mm_loadu_si128((const __m128i*)(p + i * IN));
        const __m256 wl = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(w));
        const __m256 wh = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(w, 8)));
        a[i] = _mm256_fmadd_ps(hi, wh, _mm256_fmadd_ps(lo, wl, a[i]));
      }
    }
    for (int i = 0; i < OUT / 2; ++i) {
      const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a[i]), _mm256_extractf128_ps(a[i], 1));
      const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
      acc[half + i] = _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
    }
  }
#else
  for (int i = 0; i < OUT; ++i) acc[i] = 0.0f;
  for (int64_t k = 0; k < in; k += IN, q += OUT * IN)
    for (int i = 0; i < OUT; ++i)
      for (int j = 0; j < IN; ++j) acc[i] += x[k + j] * static_cast<float>(q[i * IN + j]);
#endif
}

// y[r, :] = s * (w x[r, :]) for `rows` rows, blocks split over torch's threads.
void gemv(const float* x, int64_t rows, const int8_t* w, const float* s, int64_t in, int64_t out,
          float* y) {
  at::parallel_for(0, out / OUT, 4, [&](int64_t begin, int64_t end) {
    float acc[OUT];
    for (int64_t b = begin; b < end; ++b) {
      const int8_t* q = w + b * OUT * in;
      for (int64_t r = 0; r < rows; ++r) {  // a block is read from memory once, then from cache
        dot_block(x + r * in, q, in, acc);
        float* yr = y + r * out + b * OUT;
        for (int i = 0; i < OUT; ++i) yr[i] = acc[i] * s[b * OUT + i];
      }
    }
  });
}

constexpr int64_t GROUP = 32;  // inputs per int4 group: one d and one m per output

// acc[i] = sum_g d[g][i] * (x_g . q[g][i]) + m[g][i] * xsum[g] for one int4 block of OUT outputs;
// sm holds each group's 16 d and then 16 m (float16).
inline void dot_block4(const float* x, const float* xsum, const uint8_t* q, const at::Half* sm,
                       int64_t groups, float* acc) {
#if defined(__AVX512F__)
  __m512 a[OUT];
  for (auto& v : a) v = _mm512_setzero_ps();
  __m512 mins = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi32(15);
  alignas(64) float d[OUT];
  for (int64_t g = 0; g < groups; ++g, q += OUT * GROUP / 2, sm += 2 * OUT) {
    for (int line = 0; line < OUT * GROUP / 2; line += 64) _mm_prefetch((const char*)q + AHEAD + line, _MM_HINT_T0);
    const __m512 xl = _mm512_loadu_ps(x + g * GROUP), xh = _mm512_loadu_ps(x + g * GROUP + 16);
    _mm512_store_ps(d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)sm)));
    const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(sm + OUT)));
    mins = _mm512_fmadd_ps(m, _mm512_set1_ps(xsum[g]), mins);
    for (int i = 0; i < OUT; ++i) {
      const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(q + i * 16)));
      const __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, low));
      const __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 4));
      a[i] = _mm512_fmadd_ps(_mm512_fmadd_ps(xh, hi, _mm512_mul_ps(xl, lo)), _mm512_set1_ps(d[i]), a[i]);
    }
  }
  alignas(64) float m[OUT];
  _mm512_store_ps(m, mins);
  for (int i = 0; i < OUT; ++i) acc[i] = _mm512_reduce_add_ps(a[i]) + m[i];
#elif defined(__AVX2__) && defined(__F16C__)
  const __m256i low = _mm256_set1_epi32(15);
  for (int half = 0; half < OUT; half += OUT / 2) {  // 8 outputs at a time, as in dot_block
    __m256 a[OUT / 2];
    for (auto& v : a) v = _mm256_setzero_ps();
    __m256 mins = _mm256_setzero_ps();
    alignas(32) float d[OUT / 2];
    const uint8_t* p = q + half * GROUP / 2;
    const at::Half* s = sm + half;
    for (int64_t g = 0; g < groups; ++g, p += OUT * GROUP / 2, s += 2 * OUT) {
      _mm_prefetch((const char*)p + AHEAD, _MM_HINT_T0);
      const float* xg = x + g * GROUP;
      _mm256_store_ps(d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)s)));
      const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(s + OUT)));
      mins = _mm256_fmadd_ps(m, _mm256_set1_ps(xsum[g]), mins);
      for (int i = 0; i < OUT / 2; ++i) {
        const __m128i w = _mm_loadu_si128((const __m128i*)(p + i * 16));
        const __m256i w0 = _mm256_cvtepu8_epi32(w), w1 = _mm256_cvtepu8_epi32(_mm_srli_si128(w, 8));
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(xg), _mm256_cvtepi32_ps(_mm256_and_si256(w0, low)));
        t = _mm256_fmadd_ps(_mm256_loadu_ps(xg + 8), _mm256_cvtepi32_ps(_mm256_and_si256(w1, low)), t);
        t = _mm256_fmadd_ps(_mm256_loadu_ps(xg + 16), _mm256_cvtepi32_ps(_mm256_srli_epi32(w0, 4)), t);
        t = _mm256_fmadd_ps(_mm256_loadu_ps(xg + 24), _mm256_cvtepi32_ps(_mm256_srli_epi32(w1, 4)), t);
        a[i] = _mm256_fmadd_ps(t, _mm256_set1_ps(d[i]), a[i]);
      }
    }
    alignas(32) float m[OUT / 2];
    _mm256_store_ps(m, mins);
    for (int i = 0; i < OUT / 2; ++i) {
      const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(a[i]), _mm256_extractf128_ps(a[i], 1));
      const __m128 t = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
      acc[half + i] = _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t))) + m[i];
    }
  }
#else
  for (int i = 0; i < OUT; ++i) acc[i] = 0.0f;
  for (int64_t g = 0; g < groups; ++g, q += OUT * GROUP / 2, sm += 2 * OUT)
    for (int i = 0; i < OUT; ++i) {
      float dot = 0.0f;
      for (int j = 0; j < 16; ++j) {
        const uint8_t b = q[i * 16 + j];
        dot += x[g * GROUP + j] * (b & 15) + x[g * GROUP + 16 + j] * (b >> 4);
      }
      acc[i] += static_cast<float>(sm[i]) * dot + static_cast<float>(sm[OUT + i]) * xsum[g];
    }
#endif
}

// gemv for int4 blocks: each row's group sums first (the m terms), then as gemv.
void gemv4(const float* x, int64_t rows, const uint8_t* w, const at::Half* sm, int64_t in,
           int64_t out, float* y) {
  const int64_t groups = in / GROUP;
  std::vector<float> xsum(rows * groups);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      float total = 0.0f;
      for (int64_t j = 0; j < GROUP; ++j) total += x[r * in + g * GROUP + j];
      xsum[r * groups + g] = total;
    }
  at::parallel_for(0, out / OUT, 4, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      for (int64_t r = 0; r < rows; ++r)
        dot_block4(x + r * in, xsum.data() + r * groups, w + b * OUT * in / 2,
                   sm + b * 2 * OUT * groups, groups, y + r * out + b * OUT);
  });
}

// Blocks of either kind: int8 [out/16, in/16, 16, 16] with float32 scales [out], or int4
// (uint8) [out/16, in/32, 16, 16] with float16 d and m [out/16, in/32, 2, 16].
void check_blocks(const at::Tensor& w, const at::Tensor& s, int64_t in, const char* name) {
  const bool four = w.scalar_type() == at::kByte;
  TORCH_CHECK(w.dim() == 4 && (four || w.scalar_type() == at::kChar) && w.is_contiguous() &&
                  w.size(2) == OUT && w.size(3) == IN,
              name, ": contiguous int8 [out/16, in/16, 16, 16] or uint8 [out/16, in/32, 16, 16]");
  TORCH_CHECK(w.size(1) * (four ? GROUP : IN) == in, name, "'s inputs differ from x's");
  if (four) {
    TORCH_CHECK(s.dim() == 4 && s.scalar_type() == at::kHalf && s.is_contiguous() &&
                    s.size(0) == w.size(0) && s.size(1) == w.size(1) && s.size(2) == 2 &&
                    s.size(3) == OUT,
                name, " d and m: float16 [out/16, in/32, 2, 16]");
  } else {
    TORCH_CHECK(s.dim() == 1 && s.scalar_type() == at::kFloat && s.is_contiguous() &&
                    s.size(0) == w.size(0) * OUT,
                name, " scales: float32 [out]");
  }
}

// y = w x for blocks of either kind (checked by check_blocks).
void product(const float* x, int64_t rows, const at::Tensor& w, const at::Tensor& s, int64_t in,
             float* y) {
  const int64_t out = w.size(0) * OUT;
  if (w.scalar_type() == at::kByte)
    gemv4(x, rows, w.data_ptr<uint8_t>(), s.data_ptr<at::Half>(), in, out, y);
  else
    gemv(x, rows, w.data_ptr<int8_t>(), s.data_ptr<float>(), in, out, y);
}

// Either kind of blocks (registered as int8_linear and int4_linear).
at::Tensor block_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& s) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "x: contiguous float32 [rows, in]");
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0) * OUT;
  check_blocks(w, s, in, "w");
  at::Tensor y = at::empty({rows, out}, x.options());
  product(x.data_ptr<float>(), rows, w, s, in, y.data_ptr<float>());
  return y;
}

void norm_row(const float* x, const float* w, int64_t d, float eps, float* y) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < d; ++i) sum += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sum / d + eps);
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) y[i] = x[i] * inv * w[i];
}

void silu_mul_row(const float* g, const float* u, int64_t m, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// One query head over `length` cached keys and values of its group, [length, dim] each.
void attend(const float* q, const float* k, const float* v, int64_t length, int64_t dim, float scale,
            float* score, float* out) {
  float top = -INFINITY;
  for (int64_t j = 0; j < length; ++j) {
    const float* kj = k + j * dim;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < dim; ++i) dot += q[i] * kj[i];
    score[j] = dot * scale;
    top = std::max(top, score[j]);
  }
  float total = 0.0f;
  for (int64_t j = 0; j < length; ++j) total += (score[j] = std::exp(score[j] - top));
  for (int64_t i = 0; i < dim; ++i) out[i] = 0.0f;
  for (int64_t j = 0; j < length; ++j) {
    const float p = score[j] / total;
    const float* vj = v + j * dim;
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) out[i] += p * vj[i];
  }
}

// y = x / sqrt(mean(x^2) + eps) * weight, per row of a contiguous float32 [..., d].
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.is_contiguous(), "x: contiguous float32");
  const int64_t d = x.size(-1), rows = x.numel() / d;
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.is_contiguous() && weight.numel() == d,
              "weight: float32 [d]");
  at::Tensor y = at::empty(x.sizes(), x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) norm_row(xp + r * d, wp, d, static_cast<float>(eps), yp + r * d);
  return y;
}

// silu(gate) * up, for a contiguous float32 [..., 2 * m] holding gate then up.
at::Tensor silu_mul(const at::Tensor& gate_up) {
  TORCH_CHECK(gate_up.scalar_type() == at::kFloat && gate_up.is_contiguous(),
              "gate_up: contiguous float32");
  const int64_t m = gate_up.size(-1) / 2, rows = gate_up.numel() / (2 * m);
  std::vector<int64_t> shape(gate_up.sizes().begin(), gate_up.sizes().end());
  shape.back() = m;
  at::Tensor y = at::empty(shape, gate_up.options());
  const float* p = gate_up.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) silu_mul_row(p + r * 2 * m, p + r * 2 * m + m, m, yp + r * m);
  return y;
}

// Attention of one new query per head over the first `length` cached positions, grouped
// heads sharing a key/value head: q [1, heads, 1, dim] (any strides), keys and values
// [1, kv_heads, capacity, dim] contiguous. Returns [1, heads, 1, dim].
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                            int64_t length, double scale) {
  TORCH_CHECK(q.dim() == 4 && q.size(0) == 1 && q.size(2) == 1 && q.scalar_type() == at::kFloat,
              "q: float32 [1, heads, 1, dim]");
  TORCH_CHECK(keys.is_contiguous() && values.is_contiguous() && keys.sizes() == values.sizes() &&
                  keys.scalar_type() == at::kFloat && values.scalar_type() == at::kFloat,
              "keys, values: contiguous float32 [1, kv_heads, capacity, dim]");
  const int64_t heads = q.size(1), dim = q.size(3), kv = keys.size(1), cap = keys.size(2);
  TORCH_CHECK(keys.size(3) == dim && heads % kv == 0 && length > 0 && length <= cap,
              "shapes of q, keys and length disagree");
  at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty({1, heads, 1, dim}, q.options());
  const float* qp = qc.data_ptr<float>();
  const float* kp = keys.data_ptr<float>();
  const float* vp = values.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float s = static_cast<float>(scale);
  at::parallel_for(0, heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> score(length);
    for (int64_t h = begin; h < end; ++h) {
      const int64_t group = h / (heads / kv);
      attend(qp + h * dim, kp + group * cap * dim, vp + group * cap * dim, length, dim,
             static_cast<float>(scale), score.data(), op + h * dim);
    }
  });
  return out;
}

// One decode step of a Llama/Qwen2 layer for one sequence, in place on the residual stream
// h [1, 1, d]: norm, the fused q/k/v product (+ bias), rotary on q and k, k and v written at
// `position` of the layer's cache, attention over positions 0..position, the output product
// added to h; norm, the fused gate/up product, silu(gate) * up, the down product added to h.
// One call instead of about 25 torch ops: what bounds a small model's step (SmolLM2-135M).
void decode_layer(at::Tensor h, const at::Tensor& in_norm, const at::Tensor& qkv_w,
                  const at::Tensor& qkv_s, const std::optional<at::Tensor>& qkv_b,
                  const at::Tensor& o_w, const at::Tensor& o_s, const at::Tensor& post_norm,
                  const at::Tensor& gu_w, const at::Tensor& gu_s, const at::Tensor& down_w,
                  const at::Tensor& down_s, const at::Tensor& cos, const at::Tensor& sin,
                  at::Tensor keys, at::Tensor values, int64_t position, int64_t heads,
                  double scale, double eps) {
  TORCH_CHECK(h.scalar_type() == at::kFloat && h.is_contiguous() && h.numel() == h.size(-1),
              "h: contiguous float32 [1, 1, d]");
  const int64_t d = h.size(-1), kv = keys.size(1), cap = keys.size(2), dim = keys.size(3);
  const int64_t qkv_out = (heads + 2 * kv) * dim, inner = gu_w.size(0) * OUT / 2;
  check_blocks(qkv_w, qkv_s, d, "qkv");
  check_blocks(o_w, o_s, heads * dim, "o");
  check_blocks(gu_w, gu_s, d, "gate_up");
  check_blocks(down_w, down_s, inner, "down");
  TORCH_CHECK(qkv_w.size(0) * OUT == qkv_out && o_w.size(0) * OUT == d &&
                  down_w.size(0) * OUT == d && heads % kv == 0,
              "the layer's shapes disagree with its heads");
  TORCH_CHECK(keys.is_contiguous() && values.is_contiguous() && keys.sizes() == values.sizes() &&
                  keys.scalar_type() == at::kFloat && values.scalar_type() == at::kFloat &&
                  position < cap,
              "keys, values: contiguous float32 [1, kv_heads, capacity, dim] with room");
  TORCH_CHECK(cos.numel() == dim && sin.numel() == dim && cos.is_contiguous() &&
                  sin.is_contiguous(), "cos, sin: float32 [dim]");
  TORCH_CHECK(in_norm.numel() == d && post_norm.numel() == d, "norm weights: float32 [d]");
  float* hp = h.data_ptr<float>();
  float* kp = keys.data_ptr<float>();
  float* vp = values.data_ptr<float>();
  const float* c = cos.data_ptr<float>();
  const float* sn = sin.data_ptr<float>();
  std::vector<float> x(d), qkv(qkv_out), attn(heads * dim), y(std::max(d, 2 * inner));

  norm_row(hp, in_norm.data_ptr<float>(), d, static_cast<float>(eps), x.data());
  product(x.data(), 1, qkv_w, qkv_s, d, qkv.data());
  if (qkv_b.has_value()) {
    const float* b = qkv_b->data_ptr<float>();
    for (int64_t i = 0; i < qkv_out; ++i) qkv[i] += b[i];
  }
  const int64_t half = dim / 2;
  for (int64_t head = 0; head < heads + kv; ++head) {  // rotary: q heads, then k heads
    float* t = qkv.data() + head * dim;
    for (int64_t i = 0; i < half; ++i) {
      const float a = t[i], b = t[i + half];
      t[i] = a * c[i] - b * sn[i];
      t[i + half] = b * c[i + half] + a * sn[i + half];
    }
  }
  for (int64_t g = 0; g < kv; ++g) {
    std::copy_n(qkv.data() + (heads + g) * dim, dim, kp + (g * cap + position) * dim);
    std::copy_n(qkv.data() + (heads + kv + g) * dim, dim, vp + (g * cap + position) * dim);
  }
  at::parallel_for(0, heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> score(position + 1);
    for (int64_t head = begin; head < end; ++head) {
      const int64_t g = head / (heads / kv);
      attend(qkv.data() + head * dim, kp + g * cap * dim, vp + g * cap * dim, position + 1, dim,
             static_cast<float>(scale), score.data(), attn.data() + head * dim);
    }
  });
  product(attn.data(), 1, o_w, o_s, heads * dim, y.data());
  for (int64_t i = 0; i < d; ++i) hp[i] += y[i];

  norm_row(hp, post_norm.data_ptr<float>(), d, static_cast<float>(eps), x.data());
  product(x.data(), 1, gu_w, gu_s, d, y.data());
  std::vector<float> act(inner);
  silu_mul_row(y.data(), y.data() + inner, inner, act.data());
  product(act.data(), 1, down_w, down_s, inner, y.data());
  for (int64_t i = 0; i < d; ++i) hp[i] += y[i];
}

}  // namespace

TORCH_LIBRARY(edgeagent, m) {
  m.def("int8_linear(Tensor x, Tensor w, Tensor s) -> Tensor", block_linear);
  m.def("int4_linear(Tensor x, Tensor w, Tensor s) -> Tensor", block_linear);
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor", rms_norm);
  m.def("silu_mul(Tensor gate_up) -> Tensor", silu_mul);
  m.def("decode_attention(Tensor q, Tensor keys, Tensor values, int length, float scale) -> Tensor",
        decode_attention);
  m.def(
      "decode_layer(Tensor(a!) h, Tensor in_norm, Tensor qkv_w, Tensor qkv_s, Tensor? qkv_b, "
      "Tensor o_w, Tensor o_s, Tensor post_norm, Tensor gu_w, Tensor gu_s, Tensor down_w, "
      "Tensor down_s, Tensor cos, Tensor sin, Tensor(b!) keys, Tensor(c!) values, int position, "
      "int heads, float scale, float eps) -> ()",
      decode_layer);
}
