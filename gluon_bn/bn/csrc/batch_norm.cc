// gluon-bn's training batch normalization as one compiled MXNet operator (CPU, float32/64).
//
// Registered through MXNet's extension API (include/mxnet/lib_api.h, loaded with
// mx.library.load), as the operator `gluon_bn_batch_norm`:
//
//   Y, mean, var = gluon_bn_batch_norm(X, gamma, beta, eps=..., normalize_by=...)
//
// X has shape (N, C, ...): axis 0 the examples, axis 1 the channels, the rest (H, W for a
// convolution's output; nothing for a dense layer's) flattened into L values per row, so
// that X is N * C contiguous rows of L values and row (n, c) belongs to channel c.
// gamma and beta hold C values in any shape (gluon-bn keeps them as (1, C) or (1, C, 1, 1));
// mean and var come out in gamma's shape. var is the biased (population) variance, as in
// every document. The scale is 1 / sqrt(var + eps) (normalize_by="sqrt_var_eps") or
// 1 / (sqrt(var) + eps) (normalize_by="std_eps", document 004).
//
// The backward pass differentiates all three outputs: dX, dgamma, dbeta from dY, dmean
// and dvar (the latter two are zero when only Y is used).
//
// Memory passes over the N * C * L values: forward three (sum, centred sum of squares,
// write Y); backward two (two sums, write dX). Each row's sum runs in SIMD lanes of the
// input's type (`omp simd`, no OpenMP runtime is linked) and is added to a float64
// per-channel total.

#include <cmath>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "mxnet/lib_api.h"

using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::MX_FAIL;
using mxnet::ext::MX_SUCCESS;
using mxnet::ext::OpResource;

namespace {

using Attrs = std::unordered_map<std::string, std::string>;

enum class NormalizeBy { kSqrtVarEps, kStdEps };

struct Conventions {
  double eps;
  NormalizeBy normalize_by;
};

bool ReadConventions(const Attrs& attrs, Conventions* out) {
  auto eps = attrs.find("eps");
  auto by = attrs.find("normalize_by");
  if (eps == attrs.end()) {
    MX_ERROR_MSG << "gluon_bn_batch_norm: the attribute eps is required";
    return false;
  }
  out->eps = std::stod(eps->second);
  if (by == attrs.end() || by->second == "sqrt_var_eps") {
    out->normalize_by = NormalizeBy::kSqrtVarEps;
  } else if (by->second == "std_eps") {
    out->normalize_by = NormalizeBy::kStdEps;
  } else {
    MX_ERROR_MSG << "gluon_bn_batch_norm: normalize_by must be sqrt_var_eps or std_eps, got "
                 << by->second;
    return false;
  }
  return true;
}

// The (N, C, L) view of an input of shape (N, C, ...).
struct Rows {
  int64_t N, C, L;
  explicit Rows(const std::vector<int64_t>& shape)
      : N(shape[0]), C(shape[1]), L(1) {
    for (size_t i = 2; i < shape.size(); ++i) L *= shape[i];
  }
  double count() const { return static_cast<double>(N) * static_cast<double>(L); }
};

// 1 / sqrt(var + eps) or 1 / (sqrt(var) + eps).
double InverseScale(double var, const Conventions& conv) {
  return conv.normalize_by == NormalizeBy::kSqrtVarEps ? 1.0 / std::sqrt(var + conv.eps)
                                                       : 1.0 / (std::sqrt(var) + conv.eps);
}

// d inv / d var divided by -inv / 2: inv^2 for sqrt(var + eps); inv / sqrt(var) for
// sqrt(var) + eps, taken as 0 on a constant channel (var = 0), the one-sided limit.
double VarianceSlope(double var, double inv, const Conventions& conv) {
  if (conv.normalize_by == NormalizeBy::kSqrtVarEps) return inv * inv;
  return var > 0 ? inv / std::sqrt(var) : 0.0;
}

template <typename T>
T RowSum(const T* row, int64_t L) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t l = 0; l < L; ++l) s += row[l];
  return s;
}

template <typename T>
T RowCentredSquares(const T* row, int64_t L, T mean) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t l = 0; l < L; ++l) s += (row[l] - mean) * (row[l] - mean);
  return s;
}

template <typename T>
void RowDySums(const T* dy, const T* x, int64_t L, T mean, T* sum_dy, T* sum_dy_centred) {
  T a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
  for (int64_t l = 0; l < L; ++l) {
    a += dy[l];
    b += dy[l] * (x[l] - mean);
  }
  *sum_dy = a;
  *sum_dy_centred = b;
}

// Per-channel mean and biased variance of X (two passes: the mean, then the centred squares).
template <typename T>
void Moments(const T* X, const Rows& r, std::vector<double>* mean, std::vector<double>* var) {
  mean->assign(r.C, 0.0);
  var->assign(r.C, 0.0);
  for (int64_t n = 0; n < r.N; ++n)
    for (int64_t c = 0; c < r.C; ++c) (*mean)[c] += RowSum(X + (n * r.C + c) * r.L, r.L);
  for (int64_t c = 0; c < r.C; ++c) (*mean)[c] /= r.count();
  for (int64_t n = 0; n < r.N; ++n)
    for (int64_t c = 0; c < r.C; ++c)
      (*var)[c] += RowCentredSquares(X + (n * r.C + c) * r.L, r.L, static_cast<T>((*mean)[c]));
  for (int64_t c = 0; c < r.C; ++c) (*var)[c] /= r.count();
}

// Y = a * X + b per channel, a and b given per channel.
template <typename T>
void Affine(const T* X, const Rows& r, const std::vector<T>& a, const std::vector<T>& b, T* Y) {
  for (int64_t n = 0; n < r.N; ++n)
    for (int64_t c = 0; c < r.C; ++c) {
      const T* x = X + (n * r.C + c) * r.L;
      T* y = Y + (n * r.C + c) * r.L;
      const T ac = a[c], bc = b[c];
#pragma omp simd
      for (int64_t l = 0; l < r.L; ++l) y[l] = x[l] * ac + bc;
    }
}

// inputs: X, gamma, beta. outputs: Y, mean, var.
template <typename T>
void Forward(std::vector<MXTensor>* in, std::vector<MXTensor>* out, const Conventions& conv) {
  const Rows r((*in)[0].shape);
  const T* X = (*in)[0].data<T>();
  const T* gamma = (*in)[1].data<T>();
  const T* beta = (*in)[2].data<T>();
  std::vector<double> mean, var;
  Moments(X, r, &mean, &var);
  // Y = gamma * inv * (X - mean) + beta = a * X + b
  std::vector<T> a(r.C), b(r.C);
  for (int64_t c = 0; c < r.C; ++c) {
    const double scale = gamma[c] * InverseScale(var[c], conv);
    a[c] = static_cast<T>(scale);
    b[c] = static_cast<T>(beta[c] - mean[c] * scale);
    (*out)[1].data<T>()[c] = static_cast<T>(mean[c]);
    (*out)[2].data<T>()[c] = static_cast<T>(var[c]);
  }
  Affine(X, r, a, b, (*out)[0].data<T>());
}

// inputs: dY, dmean, dvar, X, gamma, beta, Y, mean, var. outputs: dX, dgamma, dbeta.
template <typename T>
void Backward(std::vector<MXTensor>* in, std::vector<MXTensor>* out, const Conventions& conv) {
  const Rows r((*in)[3].shape);
  const T* dY = (*in)[0].data<T>();
  const T* dmean = (*in)[1].data<T>();
  const T* dvar = (*in)[2].data<T>();
  const T* X = (*in)[3].data<T>();
  const T* gamma = (*in)[4].data<T>();
  const T* mean = (*in)[7].data<T>();
  const T* var = (*in)[8].data<T>();
  std::vector<double> sum_dy(r.C, 0.0), sum_dy_centred(r.C, 0.0);
  for (int64_t n = 0; n < r.N; ++n)
    for (int64_t c = 0; c < r.C; ++c) {
      const int64_t offset = (n * r.C + c) * r.L;
      T s, sc;
      RowDySums(dY + offset, X + offset, r.L, mean[c], &s, &sc);
      sum_dy[c] += s;
      sum_dy_centred[c] += sc;
    }
  // dX = A * dY + B * (X - mean) + D per channel, with
  //   A = gamma * inv,
  //   B = -A * slope * sum(dY * (X - mean)) / count + 2 * dvar / count,
  //   D = -A * sum(dY) / count + dmean / count;
  // written as dX = A * dY + B * X + (D - B * mean).
  std::vector<T> A(r.C), B(r.C), D(r.C);
  const double count = r.count();
  for (int64_t c = 0; c < r.C; ++c) {
    const double inv = InverseScale(var[c], conv);
    const double a = gamma[c] * inv;
    const double b = -a * VarianceSlope(var[c], inv, conv) * sum_dy_centred[c] / count +
                     2.0 * dvar[c] / count;
    const double d = -a * sum_dy[c] / count + dmean[c] / count;
    A[c] = static_cast<T>(a);
    B[c] = static_cast<T>(b);
    D[c] = static_cast<T>(d - b * mean[c]);
    out->at(1).data<T>()[c] = static_cast<T>(sum_dy_centred[c] * inv);
    out->at(2).data<T>()[c] = static_cast<T>(sum_dy[c]);
  }
  T* dX = (*out)[0].data<T>();
  for (int64_t n = 0; n < r.N; ++n)
    for (int64_t c = 0; c < r.C; ++c) {
      const int64_t offset = (n * r.C + c) * r.L;
      const T* dy = dY + offset;
      const T* x = X + offset;
      T* dx = dX + offset;
      const T ac = A[c], bc = B[c], dc = D[c];
#pragma omp simd
      for (int64_t l = 0; l < r.L; ++l) dx[l] = ac * dy[l] + bc * x[l] + dc;
    }
}

bool CheckCpu(const std::vector<MXTensor>& tensors) {
  for (const MXTensor& t : tensors)
    if (t.ctx.dev_type != "cpu") {
      MX_ERROR_MSG << "gluon_bn_batch_norm runs on the CPU only, got a tensor on "
                   << t.ctx.dev_type;
      return false;
    }
  return true;
}

using Kernel = void (*)(std::vector<MXTensor>*, std::vector<MXTensor>*, const Conventions&);

// Run the float32 or float64 kernel, by the dtype of input `x_index` (X).
MXReturnValue Dispatch(const Attrs& attrs, std::vector<MXTensor>* in,
                       std::vector<MXTensor>* out, size_t x_index, Kernel f32, Kernel f64) {
  Conventions conv;
  if (!ReadConventions(attrs, &conv) || !CheckCpu(*in)) return MX_FAIL;
  ((*in)[x_index].dtype == mxnet::ext::kFloat32 ? f32 : f64)(in, out, conv);
  return MX_SUCCESS;
}

MXReturnValue ForwardOp(const Attrs& attrs, std::vector<MXTensor>* in,
                        std::vector<MXTensor>* out, const OpResource&) {
  return Dispatch(attrs, in, out, 0, Forward<float>, Forward<double>);
}

MXReturnValue BackwardOp(const Attrs& attrs, std::vector<MXTensor>* in,
                         std::vector<MXTensor>* out, const OpResource&) {
  return Dispatch(attrs, in, out, 3, Backward<float>, Backward<double>);
}

MXReturnValue ParseAttrs(const Attrs& attrs, int* num_in, int* num_out) {
  Conventions conv;
  if (!ReadConventions(attrs, &conv)) return MX_FAIL;
  *num_in = 3;
  *num_out = 3;
  return MX_SUCCESS;
}

MXReturnValue InferType(const Attrs&, std::vector<int>* in_types, std::vector<int>* out_types) {
  const int t = (*in_types)[0];
  if (t != mxnet::ext::kFloat32 && t != mxnet::ext::kFloat64) {
    MX_ERROR_MSG << "gluon_bn_batch_norm takes float32 or float64 input";
    return MX_FAIL;
  }
  for (size_t i = 1; i < in_types->size(); ++i)
    if ((*in_types)[i] != t) {
      MX_ERROR_MSG << "gluon_bn_batch_norm: gamma and beta must have the input's dtype";
      return MX_FAIL;
    }
  for (int& o : *out_types) o = t;
  return MX_SUCCESS;
}

MXReturnValue InferShape(const Attrs&, std::vector<std::vector<unsigned int>>* in_shapes,
                         std::vector<std::vector<unsigned int>>* out_shapes) {
  const std::vector<unsigned int>& x = (*in_shapes)[0];
  if (x.size() < 2) {
    MX_ERROR_MSG << "gluon_bn_batch_norm: the input needs shape (N, C, ...), got "
                 << x.size() << " axes";
    return MX_FAIL;
  }
  for (int i = 1; i <= 2; ++i) {
    int64_t size = 1;
    for (unsigned int d : (*in_shapes)[i]) size *= d;
    if (size != x[1]) {
      MX_ERROR_MSG << "gluon_bn_batch_norm: gamma and beta need " << x[1]
                   << " values, one per channel, got " << size;
      return MX_FAIL;
    }
  }
  (*out_shapes)[0] = x;
  (*out_shapes)[1] = (*in_shapes)[1];
  (*out_shapes)[2] = (*in_shapes)[1];
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(gluon_bn_batch_norm)
    .setForward(ForwardOp, "cpu")
    .setBackward(BackwardOp, "cpu")
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape);

MXReturnValue initialize(int version) {
  // The extension API with pointer arguments (fcomp_t above) is MXNet 1.8's and later's.
  if (version < 10800) {
    MX_ERROR_MSG << "gluon_bn_batch_norm needs MXNet >= 1.8, got version " << version;
    return MX_FAIL;
  }
  return MX_SUCCESS;
}
