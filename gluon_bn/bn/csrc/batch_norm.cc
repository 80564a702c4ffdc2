// gluon-bn's batch normalization layer as one compiled MXNet operator (CPU, float32/64).
//
// Registered through MXNet's extension API (include/mxnet/lib_api.h, loaded with
// mx.library.load), as the operator `gluon_bn_batch_norm`:
//
//   Y, mean, var = gluon_bn_batch_norm(X, gamma, beta, moving_mean, moving_var[, seeded],
//                                      training=0|1, eps=..., normalize_by=...,
//                                      momentum=..., momentum_on=...,
//                                      update_in_prediction=0|1, first_batch=0|1)
//
// One call is the whole layer: normalise X and update the moving statistics in place.
// moving_mean, moving_var (and seeded) are mutable inputs, which MXNet treats as auxiliary
// states, like its own BatchNorm's: a hybridized graph holding this operator updates them
// itself, with no Python between steps. The mode is the attribute `training`: MXNet's
// extension API hands an operator no is_train flag (src/c_api/c_api.cc,
// CustomFComputeDispatcher), so gluon-bn compiles one graph per mode
// (gluon_bn/bn/modal.py).
//
// X has shape (N, C, ...): axis 0 the examples, axis 1 the channels, the rest (H, W for a
// convolution's output; nothing for a dense layer's) flattened into L values per row, so
// that X is N * C contiguous rows of L values and row (n, c) belongs to channel c.
// gamma, beta and the moving statistics hold C values in any shape (gluon-bn keeps them as
// (1, C) or (1, C, 1, 1)); seeded holds one value, 0 until the first update, then 1.
//
// Training: Y from the batch's mean and biased variance; mean and var (outputs) are those
// batch statistics. Prediction: Y from the moving statistics; mean and var are copies of
// them as they were before any update. The moving statistics are updated in training, and in
// prediction too with update_in_prediction=1 (document 004), by
//   momentum_on=moving: moving = momentum * moving + (1 - momentum) * batch,
//   momentum_on=batch:  moving = (1 - momentum) * moving + momentum * batch,
// except that while seeded is 0 (first_batch=1) the batch statistics replace them.
// The scale is 1 / sqrt(var + eps) (normalize_by="sqrt_var_eps") or 1 / (sqrt(var) + eps)
// (normalize_by="std_eps", document 004).
//
// The backward pass gives dX, dgamma, dbeta from dY and, in training, from dmean and dvar
// (zero when only Y is used); in prediction the statistics are constants. The moving
// statistics and seeded get no gradient.
//
// Memory passes over the N * C * L values: forward three in training (sum, centred sum of
// squares, write Y), one in prediction (two more with update_in_prediction); backward two
// (two sums, write dX). Each row's sum runs in SIMD lanes of the input's type (`omp simd`)
// and is added to a float64 per-channel total.
//
// Threads: the passes run on OpenMP's threads (MXNet's own runtime, so the count its
// operators use), the sums split by channel and the writes by example. Each channel's total is
// still added up by one thread in the order n = 0, 1, ..., so any thread count gives the
// same bits as one thread.

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include "mxnet/lib_api.h"

using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::MX_FAIL;
using mxnet::ext::MX_SUCCESS;
using mxnet::ext::OpResource;

namespace {

using Attrs = std::unordered_map<std::string, std::string>;

// Input positions; kSeeded exists only with first_batch=1.
enum Input { kX, kGamma, kBeta, kMovingMean, kMovingVar, kSeeded };
constexpr int kNumOutputs = 3;  // Y, mean, var

enum class NormalizeBy { kSqrtVarEps, kStdEps };

struct Conventions {
  bool training;               // batch statistics (1) or the moving ones (0)
  double eps;
  NormalizeBy normalize_by;
  double momentum;
  bool momentum_on_batch;      // momentum weighs the batch statistic (documents 000, 003)
  bool update_in_prediction;
  bool first_batch;            // a `seeded` input follows moving_var
  int num_inputs() const { return first_batch ? kSeeded + 1 : kSeeded; }
};

bool ReadFlag(const Attrs& attrs, const char* name, bool* out) {
  auto it = attrs.find(name);
  if (it == attrs.end() || it->second == "0" || it->second == "False") {
    *out = false;
  } else if (it->second == "1" || it->second == "True") {
    *out = true;
  } else {
    MX_ERROR_MSG << "gluon_bn_batch_norm: " << name << " must be 0 or 1, got " << it->second;
    return false;
  }
  return true;
}

bool ReadConventions(const Attrs& attrs, Conventions* out) {
  auto eps = attrs.find("eps");
  auto momentum = attrs.find("momentum");
  if (eps == attrs.end() || momentum == attrs.end()) {
    MX_ERROR_MSG << "gluon_bn_batch_norm: the attributes eps and momentum are required";
    return false;
  }
  out->eps = std::stod(eps->second);
  out->momentum = std::stod(momentum->second);
  auto by = attrs.find("normalize_by");
  if (by == attrs.end() || by->second == "sqrt_var_eps") {
    out->normalize_by = NormalizeBy::kSqrtVarEps;
  } else if (by->second == "std_eps") {
    out->normalize_by = NormalizeBy::kStdEps;
  } else {
    MX_ERROR_MSG << "gluon_bn_batch_norm: normalize_by must be sqrt_var_eps or std_eps, got "
                 << by->second;
    return false;
  }
  auto on = attrs.find("momentum_on");
  if (on == attrs.end() || on->second == "moving") {
    out->momentum_on_batch = false;
  } else if (on->second == "batch") {
    out->momentum_on_batch = true;
  } else {
    MX_ERROR_MSG << "gluon_bn_batch_norm: momentum_on must be moving or batch, got "
                 << on->second;
    return false;
  }
  return ReadFlag(attrs, "training", &out->training) &&
         ReadFlag(attrs, "update_in_prediction", &out->update_in_prediction) &&
         ReadFlag(attrs, "first_batch", &out->first_batch);
}

// The (N, C, L) view of an input of shape (N, C, ...).
struct Rows {
  int64_t N, C, L;
  explicit Rows(const std::vector<int64_t>& shape)
      : N(shape[0]), C(shape[1]), L(1) {
    for (size_t i = 2; i < shape.size(); ++i) L *= shape[i];
  }
  double count() const { return static_cast<double>(N) * static_cast<double>(L); }
  // OpenMP threads for a pass over the input: one below about 32k values, where waking the
  // others costs more than it saves (LeNet's dense layers at batch 256).
  int threads() const { return N * C * L < (int64_t{1} << 15) ? 1 : omp_get_max_threads(); }
};

// body(c0, c1) for disjoint channel ranges covering [0, C), one per thread.
template <typename Body>
void ForChannelBlocks(const Rows& r, Body body) {
  const int t = static_cast<int>(std::min<int64_t>(r.threads(), r.C));
#pragma omp parallel num_threads(t) if (t > 1)
  {
    const int64_t k = omp_get_thread_num(), n = omp_get_num_threads();
    body(r.C * k / n, r.C * (k + 1) / n);
  }
}

// body(n) for every example n, the examples shared among the threads.
template <typename Body>
void ForExamples(const Rows& r, Body body) {
  const int t = r.threads();
#pragma omp parallel for num_threads(t) if (t > 1) schedule(static)
  for (int64_t n = 0; n < r.N; ++n) body(n);
}

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

// Example x's contributions (x: its C * L values) to the float64 totals of channels
// [c0, c1). Each channel's values are summed in SIMD lanes of T and the sum is added to the
// total; a dense layer's input (L = 1) holds one value per channel, so there the channels
// sit side by side in the lanes instead, which adds the same values in the same order.
template <typename T>
void AddSums(const T* x, const Rows& r, int64_t c0, int64_t c1, double* total) {
  if (r.L == 1) {
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) total[c] += x[c];
    return;
  }
  for (int64_t c = c0; c < c1; ++c) {
    const T* row = x + c * r.L;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t l = 0; l < r.L; ++l) s += row[l];
    total[c] += s;
  }
}

template <typename T>
void AddCentredSquares(const T* x, const Rows& r, int64_t c0, int64_t c1, const double* mean,
                       double* total) {
  if (r.L == 1) {
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) {
      const T d = x[c] - static_cast<T>(mean[c]);
      total[c] += d * d;
    }
    return;
  }
  for (int64_t c = c0; c < c1; ++c) {
    const T* row = x + c * r.L;
    const T m = static_cast<T>(mean[c]);
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t l = 0; l < r.L; ++l) s += (row[l] - m) * (row[l] - m);
    total[c] += s;
  }
}

// The backward pass's sums of dY and of dY * (X - mean), as AddSums.
template <typename T>
void AddDySums(const T* dy, const T* x, const Rows& r, int64_t c0, int64_t c1, const T* mean,
               double* sum_dy, double* sum_dy_centred) {
  if (r.L == 1) {
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) {
      sum_dy[c] += dy[c];
      sum_dy_centred[c] += dy[c] * (x[c] - mean[c]);
    }
    return;
  }
  for (int64_t c = c0; c < c1; ++c) {
    const T* g = dy + c * r.L;
    const T* row = x + c * r.L;
    const T m = mean[c];
    T a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int64_t l = 0; l < r.L; ++l) {
      a += g[l];
      b += g[l] * (row[l] - m);
    }
    sum_dy[c] += a;
    sum_dy_centred[c] += b;
  }
}

// op(c, i) for every value i of one example's C * L values, i belonging to channel c: each
// channel's row in SIMD lanes, or for a dense layer's input (L = 1) the channels side by
// side in the lanes.
template <typename Op>
void ForValues(const Rows& r, Op op) {
  if (r.L == 1) {
#pragma omp simd
    for (int64_t c = 0; c < r.C; ++c) op(c, c);
    return;
  }
  for (int64_t c = 0; c < r.C; ++c) {
    const int64_t begin = c * r.L, end = begin + r.L;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) op(c, i);
  }
}

// Per-channel mean and biased variance of X (two passes: the mean, then the centred squares).
template <typename T>
void Moments(const T* X, const Rows& r, std::vector<double>* mean, std::vector<double>* var) {
  mean->assign(r.C, 0.0);
  var->assign(r.C, 0.0);
  double* m = mean->data();
  double* v = var->data();
  const int64_t stride = r.C * r.L;  // one example's values
  ForChannelBlocks(r, [&](int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < r.N; ++n) AddSums(X + n * stride, r, c0, c1, m);
    for (int64_t c = c0; c < c1; ++c) m[c] /= r.count();
    for (int64_t n = 0; n < r.N; ++n) AddCentredSquares(X + n * stride, r, c0, c1, m, v);
    for (int64_t c = c0; c < c1; ++c) v[c] /= r.count();
  });
}

// Y = a * X + b per channel, a and b given per channel.
template <typename T>
void Affine(const T* X, const Rows& r, const std::vector<T>& a, const std::vector<T>& b, T* Y) {
  const int64_t stride = r.C * r.L;
  ForExamples(r, [&](int64_t n) {
    const T* x = X + n * stride;
    T* y = Y + n * stride;
    ForValues(r, [&](int64_t c, int64_t i) { y[i] = x[i] * a[c] + b[c]; });
  });
}

// Update the moving statistics with the batch's, in place (see the top of this file).
template <typename T>
void UpdateMoving(std::vector<MXTensor>* in, const std::vector<double>& mean,
                  const std::vector<double>& var, const Conventions& conv) {
  T* moving[2] = {(*in)[kMovingMean].data<T>(), (*in)[kMovingVar].data<T>()};
  const std::vector<double>* batch[2] = {&mean, &var};
  T* seeded = conv.first_batch ? (*in)[kSeeded].data<T>() : nullptr;
  const bool average = seeded == nullptr || seeded[0] != 0;
  const double keep = conv.momentum_on_batch ? 1.0 - conv.momentum : conv.momentum;
  for (int s = 0; s < 2; ++s)
    for (size_t c = 0; c < mean.size(); ++c) {
      const double b = (*batch[s])[c];
      moving[s][c] = static_cast<T>(average ? keep * moving[s][c] + (1.0 - keep) * b : b);
    }
  if (seeded != nullptr) seeded[0] = 1;
}

// inputs: X, gamma, beta, moving_mean, moving_var[, seeded]. outputs: Y, mean, var.
template <typename T>
void Forward(std::vector<MXTensor>* in, std::vector<MXTensor>* out, const Conventions& conv) {
  const Rows r((*in)[kX].shape);
  const T* X = (*in)[kX].data<T>();
  const T* gamma = (*in)[kGamma].data<T>();
  const T* beta = (*in)[kBeta].data<T>();
  const bool training = conv.training;
  std::vector<double> mean(r.C), var(r.C);  // the statistics Y is normalised with
  std::vector<double> batch_mean, batch_var;
  if (training || conv.update_in_prediction) Moments(X, r, &batch_mean, &batch_var);
  if (training) {
    mean = batch_mean;
    var = batch_var;
  } else {
    for (int64_t c = 0; c < r.C; ++c) {
      mean[c] = (*in)[kMovingMean].data<T>()[c];
      var[c] = (*in)[kMovingVar].data<T>()[c];
    }
  }
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
  if (training || conv.update_in_prediction) UpdateMoving<T>(in, batch_mean, batch_var, conv);
}

// inputs: dY, dmean, dvar, then the forward's inputs (from index 3), then Y, mean, var.
// outputs: one gradient per forward input: dX, dgamma, dbeta, then zeros.
template <typename T>
void Backward(std::vector<MXTensor>* in, std::vector<MXTensor>* out, const Conventions& conv) {
  const int first = kNumOutputs;  // where the forward's inputs start
  const int saved = first + conv.num_inputs();  // where its outputs start
  const Rows r((*in)[first + kX].shape);
  const T* dY = (*in)[0].data<T>();
  const T* dmean = (*in)[1].data<T>();
  const T* dvar = (*in)[2].data<T>();
  const T* X = (*in)[first + kX].data<T>();
  const T* gamma = (*in)[first + kGamma].data<T>();
  const bool training = conv.training;
  const T* mean = (*in)[saved + 1].data<T>();
  const T* var = (*in)[saved + 2].data<T>();
  std::vector<double> sum_dy(r.C, 0.0), sum_dy_centred(r.C, 0.0);
  const int64_t stride = r.C * r.L;
  ForChannelBlocks(r, [&](int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < r.N; ++n)
      AddDySums(dY + n * stride, X + n * stride, r, c0, c1, mean, sum_dy.data(),
                sum_dy_centred.data());
  });
  // dX = A * dY + B * (X - mean) + D per channel, with
  //   A = gamma * inv,
  //   B = -A * slope * sum(dY * (X - mean)) / count + 2 * dvar / count,
  //   D = -A * sum(dY) / count + dmean / count
  // in training, and B = D = 0 in prediction (the statistics do not depend on X);
  // written as dX = A * dY + B * X + (D - B * mean).
  std::vector<T> A(r.C), B(r.C), D(r.C);
  const double count = r.count();
  for (int64_t c = 0; c < r.C; ++c) {
    const double inv = InverseScale(var[c], conv);
    const double a = gamma[c] * inv;
    double b = 0.0, d = 0.0;
    if (training) {
      b = -a * VarianceSlope(var[c], inv, conv) * sum_dy_centred[c] / count +
          2.0 * dvar[c] / count;
      d = -a * sum_dy[c] / count + dmean[c] / count;
    }
    A[c] = static_cast<T>(a);
    B[c] = static_cast<T>(b);
    D[c] = static_cast<T>(d - b * mean[c]);
    (*out)[kGamma].data<T>()[c] = static_cast<T>(sum_dy_centred[c] * inv);
    (*out)[kBeta].data<T>()[c] = static_cast<T>(sum_dy[c]);
  }
  T* dX = (*out)[kX].data<T>();
  ForExamples(r, [&](int64_t n) {
    const T* dy = dY + n * stride;
    const T* x = X + n * stride;
    T* dx = dX + n * stride;
    ForValues(r, [&](int64_t c, int64_t i) { dx[i] = A[c] * dy[i] + B[c] * x[i] + D[c]; });
  });
  // The moving statistics and seeded are constants to autograd. MXNet may hand no
  // memory for a gradient nobody asked for (theirs never are), hence the check.
  for (int i = kMovingMean; i < conv.num_inputs(); ++i) {
    MXTensor& g = (*out)[i];
    if (g.data_ptr == nullptr) continue;
    if (g.dtype == mxnet::ext::kFloat64) {
      for (int64_t k = 0; k < g.size(); ++k) g.data<double>()[k] = 0;
    } else {
      for (int64_t k = 0; k < g.size(); ++k) g.data<float>()[k] = 0;
    }
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
  return Dispatch(attrs, in, out, kX, Forward<float>, Forward<double>);
}

MXReturnValue BackwardOp(const Attrs& attrs, std::vector<MXTensor>* in,
                         std::vector<MXTensor>* out, const OpResource&) {
  return Dispatch(attrs, in, out, kNumOutputs + kX, Backward<float>, Backward<double>);
}

MXReturnValue ParseAttrs(const Attrs& attrs, int* num_in, int* num_out) {
  Conventions conv;
  if (!ReadConventions(attrs, &conv)) return MX_FAIL;
  *num_in = conv.num_inputs();
  *num_out = kNumOutputs;
  return MX_SUCCESS;
}

// The moving statistics (and seeded) are written in place: MXNet's auxiliary states.
MXReturnValue MutateInputs(const Attrs& attrs, std::vector<int>* indices) {
  Conventions conv;
  if (!ReadConventions(attrs, &conv)) return MX_FAIL;
  *indices = {kMovingMean, kMovingVar};
  if (conv.first_batch) indices->push_back(kSeeded);
  return MX_SUCCESS;
}

MXReturnValue InferType(const Attrs&, std::vector<int>* in_types, std::vector<int>* out_types) {
  const int t = (*in_types)[kX];
  if (t != mxnet::ext::kFloat32 && t != mxnet::ext::kFloat64) {
    MX_ERROR_MSG << "gluon_bn_batch_norm takes float32 or float64 input";
    return MX_FAIL;
  }
  for (size_t i = 1; i < in_types->size(); ++i)
    if ((*in_types)[i] != t) {
      MX_ERROR_MSG << "gluon_bn_batch_norm: the parameters and statistics must have the "
                      "input's dtype";
      return MX_FAIL;
    }
  for (int& o : *out_types) o = t;
  return MX_SUCCESS;
}

int64_t Size(const std::vector<unsigned int>& shape) {
  int64_t size = 1;
  for (unsigned int d : shape) size *= d;
  return size;
}

MXReturnValue InferShape(const Attrs&, std::vector<std::vector<unsigned int>>* in_shapes,
                         std::vector<std::vector<unsigned int>>* out_shapes) {
  const std::vector<unsigned int>& x = (*in_shapes)[kX];
  if (x.size() < 2) {
    MX_ERROR_MSG << "gluon_bn_batch_norm: the input needs shape (N, C, ...), got "
                 << x.size() << " axes";
    return MX_FAIL;
  }
  for (int i = kGamma; i <= kMovingVar; ++i)
    if (Size((*in_shapes)[i]) != x[1]) {
      MX_ERROR_MSG << "gluon_bn_batch_norm: gamma, beta and the moving statistics need "
                   << x[1] << " values, one per channel; input " << i << " has "
                   << Size((*in_shapes)[i]);
      return MX_FAIL;
    }
  if (in_shapes->size() > kSeeded && Size((*in_shapes)[kSeeded]) != 1) {
    MX_ERROR_MSG << "gluon_bn_batch_norm: seeded holds one value";
    return MX_FAIL;
  }
  (*out_shapes)[0] = x;
  (*out_shapes)[1] = (*in_shapes)[kGamma];
  (*out_shapes)[2] = (*in_shapes)[kGamma];
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(gluon_bn_batch_norm)
    .setForward(ForwardOp, "cpu")
    .setBackward(BackwardOp, "cpu")
    .setParseAttrs(ParseAttrs)
    .setMutateInputs(MutateInputs)
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
