#pragma once
// Model descriptions small enough to write their requests and responses out by hand, for the edge's
// codec and server tests.
#include "edge/kserve.hpp"

namespace ee::testing {

// A 2x2 one-channel image model with two labels.
inline edge::ModelDescription tiny_image_model() {
  edge::ModelDescription m;
  m.name = "tiny";
  m.image_size = 2;
  m.channels = 1;
  m.labels = {"cat", "dog"};
  return m;
}

inline edge::ModelDescription spam_text_model() {
  edge::ModelDescription m;
  m.name = "spam";
  m.kind = edge::ModelKind::text;
  m.labels = {"ham", "spam"};
  m.max_text_bytes = 32;
  return m;
}

}  // namespace ee::testing
