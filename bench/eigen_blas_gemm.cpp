// The lever "Eigen with its BLAS back-end": y = x W^T written as an Eigen expression, compiled with
// EIGEN_USE_BLAS so Eigen hands the product to OpenBLAS's sgemm_, at the shapes of one encoder layer.
// Compare with openblas_layer_gemm / eigen_layer_gemm of sgemm_peak (same shapes, one thread).
//
//   OPENBLAS_NUM_THREADS=1 eigen_blas_gemm
#include <benchmark/benchmark.h>

#include <Eigen/Core>

namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void eigen_use_blas_layer_gemm(benchmark::State& state) {
  const auto m = state.range(0), n = state.range(1), k = state.range(2);
  const Matrix x = Matrix::Random(m, k), w = Matrix::Random(n, k);
  Matrix y(m, n);
  for (auto _ : state) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * static_cast<double>(m * n * k) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

void layer_shapes(benchmark::internal::Benchmark* b) {
  for (auto rows : {17, 544}) b->Args({rows, 192, 64})->Args({rows, 256, 64})->Args({rows, 64, 256});
  b->Args({128, 2304, 768})->Args({128, 3072, 768})->Args({128, 768, 3072});
}

BENCHMARK(eigen_use_blas_layer_gemm)->Apply(layer_shapes)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
