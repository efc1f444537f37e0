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
// Not here: prompts (many rows at once are compute-bound: model/quant.py turns the weight back
// into floats for one matmul; attention of many queries stays torch's), int4, activation
// quantization, anything but the CPU.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>
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

at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& s) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "x: contiguous float32 [rows, in]");
  TORCH_CHECK(w.dim() == 4 && w.scalar_type() == at::kChar && w.is_contiguous() &&
                  w.size(2) == OUT && w.size(3) == IN,
              "w: contiguous int8 [out/16, in/16, 16, 16]");
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0) * OUT;
  TORCH_CHECK(w.size(1) * IN == in, "w's inputs differ from x's");
  TORCH_CHECK(s.dim() == 1 && s.scalar_type() == at::kFloat && s.size(0) == out,
              "s: float32 [out]");
  at::Tensor y = at::empty({rows, out}, x.options());
  const float* xp = x.data_ptr<float>();
  const int8_t* wp = w.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, out / OUT, 4, [&](int64_t begin, int64_t end) {
    float acc[OUT];
    for (int64_t b = begin; b < end; ++b) {
      const int8_t* q = wp + b * OUT * in;
      for (int64_t r = 0; r < rows; ++r) {  // a block is read from memory once, then from cache
        dot_block(xp + r * in, q, in, acc);
        float* yr = yp + r * out + b * OUT;
        for (int i = 0; i < OUT; ++i) yr[i] = acc[i] * sp[b * OUT + i];
      }
    }
  });
  return y;
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
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xp + r * d;
    float* yr = yp + r * d;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < d; ++i) sum += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(sum / d + static_cast<float>(eps));
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * inv * wp[i];
  }
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
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = p + r * 2 * m;
    const float* u = g + m;
    float* yr = yp + r * m;
#pragma omp simd
    for (int64_t i = 0; i < m; ++i) yr[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
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
      const float* qh = qp + h * dim;
      const float* kh = kp + (h / (heads / kv)) * cap * dim;
      const float* vh = vp + (h / (heads / kv)) * cap * dim;
      float top = -INFINITY;
      for (int64_t j = 0; j < length; ++j) {
        const float* kj = kh + j * dim;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < dim; ++i) dot += qh[i] * kj[i];
        score[j] = dot * s;
        top = std::max(top, score[j]);
      }
      float total = 0.0f;
      for (int64_t j = 0; j < length; ++j) total += (score[j] = std::exp(score[j] - top));
      float* oh = op + h * dim;
      for (int64_t i = 0; i < dim; ++i) oh[i] = 0.0f;
      for (int64_t j = 0; j < length; ++j) {
        const float p = score[j] / total;
        const float* vj = vh + j * dim;
#pragma omp simd
        for (int64_t i = 0; i < dim; ++i) oh[i] += p * vj[i];
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(edgeagent, m) {
  m.def("int8_linear(Tensor x, Tensor w, Tensor s) -> Tensor", int8_linear);
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor", rms_norm);
  m.def("silu_mul(Tensor gate_up) -> Tensor", silu_mul);
  m.def("decode_attention(Tensor q, Tensor keys, Tensor values, int length, float scale) -> Tensor",
        decode_attention);
}
