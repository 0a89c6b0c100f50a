#include "common/runtime/early_exit.hpp"

#include <span>
#include <string>

namespace ee::runtime {

void step(const model::MultiExitModel& model, Batch& batch, model::Workspace& ws,
          std::vector<Answer>& answered) {
  model.run_layers(batch.hidden(), batch.depth() + 1, ws);
  const int layer = batch.depth();
  if (!model.has_exit(layer)) return;
  const bool last = layer == model.num_layers();
  const model::Matrix logits = model.exit_logits(batch.hidden(), layer, ws);
  std::vector<int> leaving, final_labels;
  for (int b = 0; b < batch.size(); ++b) {
    Sample& s = batch.sample(b);
    const std::span<const float> row(logits.row(b).data(), static_cast<std::size_t>(logits.cols()));
    const exits::Confidence c = exits::confidence(row);
    if (!s.exited && (s.exit.should_exit(c) || last)) s.exited = Exit{layer, c, exits::probabilities(row)};
    if (s.exited && (!s.audit || last)) {
      leaving.push_back(b);
      final_labels.push_back(s.audit ? c.label : -1);
    }
  }
  if (leaving.empty()) return;
  Batch gone = batch.take(leaving);
  for (int i = 0; i < gone.size(); ++i) {
    Sample& s = gone.sample(i);
    Exit exit = std::move(*s.exited);
    s.exited.reset();
    answered.push_back(Answer{std::move(s), std::move(exit), final_labels[static_cast<std::size_t>(i)]});
  }
}

std::vector<Answer> run_with_exits(const model::MultiExitModel& model, Batch& batch, int to_layer,
                                   model::Workspace& ws) {
  if (to_layer < batch.depth() || to_layer > model.num_layers())
    throw model::ModelError("cannot run a batch at depth " + std::to_string(batch.depth()) + " to layer " +
                            std::to_string(to_layer) + " of a " + std::to_string(model.num_layers()) +
                            "-layer model");
  std::vector<Answer> answered;
  while (batch.depth() < to_layer && !batch.empty()) step(model, batch, ws, answered);
  if (batch.empty()) batch.hidden().depth = to_layer;
  return answered;
}

}  // namespace ee::runtime
