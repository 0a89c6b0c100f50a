// The machine's large-SGEMM peak, the yardstick of bench/RESULTS.md: C = A B with A, B, C 2048 x 2048
// float, OpenBLAS (cblas_sgemm) and Eigen 3.4's own GEMM (threads through OpenMP), 1 and 2 threads; and
// Eigen's own GEMM at the shapes of one encoder layer, the ablation baseline of the engine's OpenBLAS path.
//
//   sgemm_peak [--benchmark_repetitions=5]
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <Eigen/Core>

namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int kSize = 2048;

void flops_counter(benchmark::State& state, double m, double n, double k) {
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * m * n * k * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

void openblas(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  openblas_set_num_threads(threads);
  const Matrix a = Matrix::Random(kSize, kSize), b = Matrix::Random(kSize, kSize);
  Matrix c(kSize, kSize);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kSize, kSize, kSize, 1.0f, a.data(), kSize,
                b.data(), kSize, 0.0f, c.data(), kSize);
    benchmark::DoNotOptimize(c.data());
  }
  flops_counter(state, kSize, kSize, kSize);
  state.counters["threads"] = threads;
}

void eigen(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  Eigen::setNbThreads(threads);
  const Matrix a = Matrix::Random(kSize, kSize), b = Matrix::Random(kSize, kSize);
  Matrix c(kSize, kSize);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  flops_counter(state, kSize, kSize, kSize);
  state.counters["threads"] = threads;
}

// y = x W^T at one layer's shapes (rows x in) * (out x in)^T, one thread.
void eigen_layer_gemm(benchmark::State& state) {
  Eigen::setNbThreads(1);
  const auto m = state.range(0), n = state.range(1), k = state.range(2);
  const Matrix x = Matrix::Random(m, k), w = Matrix::Random(n, k);
  Matrix y(m, n);
  for (auto _ : state) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  flops_counter(state, static_cast<double>(m), static_cast<double>(n), static_cast<double>(k));
}

void openblas_layer_gemm(benchmark::State& state) {
  openblas_set_num_threads(1);
  const auto m = state.range(0), n = state.range(1), k = state.range(2);
  const Matrix x = Matrix::Random(m, k), w = Matrix::Random(n, k);
  Matrix y(m, n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, x.data(), static_cast<int>(k), w.data(), static_cast<int>(k), 0.0f,
                y.data(), static_cast<int>(n));
    benchmark::DoNotOptimize(y.data());
  }
  flops_counter(state, static_cast<double>(m), static_cast<double>(n), static_cast<double>(k));
}

// QKV, FFN in, FFN out of the ViT at batch 1 and 32 and of BERT-base at seq 128.
void layer_shapes(benchmark::internal::Benchmark* b) {
  for (auto rows : {17, 544}) b->Args({rows, 192, 64})->Args({rows, 256, 64})->Args({rows, 64, 256});
  b->Args({128, 2304, 768})->Args({128, 3072, 768})->Args({128, 768, 3072});
}

BENCHMARK(openblas)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(eigen)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(openblas_layer_gemm)->Apply(layer_shapes)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(eigen_layer_gemm)->Apply(layer_shapes)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
