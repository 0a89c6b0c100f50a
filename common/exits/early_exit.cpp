#include "common/exits/early_exit.hpp"

namespace ee::exits {

model::Hidden select_samples(const model::Hidden& h, const std::vector<int>& keep) {
  model::Hidden out;
  out.tokens = h.tokens;
  out.depth = h.depth;
  out.x.resize(static_cast<Eigen::Index>(keep.size()) * h.tokens, h.x.cols());
  for (size_t i = 0; i < keep.size(); ++i) {
    out.sample(static_cast<int>(i)) = h.sample(keep[i]);
    out.lengths.push_back(h.lengths[keep[i]]);
  }
  return out;
}

EarlyExitRun run_with_exits(const model::MultiExitModel& model, model::Hidden h, int to_layer,
                            const ExitRule& rule, model::Workspace& ws) {
  EarlyExitRun run;
  run.results.resize(h.batch());
  run.remaining_index.resize(h.batch());
  for (int i = 0; i < h.batch(); ++i) run.remaining_index[i] = i;
  std::vector<ExitDecider> deciders(h.batch(), ExitDecider{rule, {}});

  while (h.depth < to_layer && h.batch() > 0) {
    model.run_layers(h, h.depth + 1, ws);
    if (!model.has_exit(h.depth)) continue;
    const model::Matrix logits = model.exit_logits(h, h.depth, ws);
    const bool last = h.depth == model.num_layers();
    std::vector<int> keep;
    for (int b = 0; b < h.batch(); ++b) {
      const Confidence c = confidence(std::span(logits.row(b).data(), logits.cols()));
      const int input = run.remaining_index[b];
      if (deciders[input].should_exit(c) || last) {
        run.results[input] = ExitResult{h.depth, c};
      } else {
        keep.push_back(b);
      }
    }
    if (static_cast<int>(keep.size()) == h.batch()) continue;
    std::vector<int> index;
    for (int b : keep) index.push_back(run.remaining_index[b]);
    run.remaining_index = std::move(index);
    h = select_samples(h, keep);
  }
  run.remaining = std::move(h);
  if (run.remaining.batch() == 0) run.remaining.depth = to_layer;
  return run;
}

}  // namespace ee::exits
