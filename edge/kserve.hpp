#pragma once
// The edge's client-facing protocol: KServe v2 / Open Inference Protocol requests and responses over
// HTTP/JSON, with Triton's binary tensor data extension both ways. Nothing here runs a model or touches a
// socket: it turns bodies into typed requests and typed results into bodies.
//
// What a model takes and returns:
// - image model: one input "image", UINT8 or FP32 raw pixel values 0..255 (the engine embeds 8-bit pixels;
//   FP32 values are rounded to the nearest integer and anything outside [0, 255], NaN or Inf is refused),
//   shape [N, C, S, S], [N, S, S] when C == 1, or flat [N, C*S*S]. Metadata reports [-1, C, S, S] UINT8.
// - text model: one input "text", BYTES [N] (or [N, 1]), each element a non-empty UTF-8 text.
// - outputs, one row per sample: "label" INT64 [N], "label_name" BYTES [N], "probabilities" FP32
//   [N, num_labels], and how the sample was answered: "exit_layer" INT32 [N] (1-based), "answered_by"
//   BYTES [N] ("edge", "cloud" or "degraded"), "split" INT32 [N], "edge_us", "network_us", "cloud_us"
//   FP32 [N] (microseconds). These are outputs rather than response parameters because the protocol's
//   parameters belong to the whole request, while a batch's samples exit at different layers and places.
//
// Errors are HttpError: an HTTP status and a message naming the field or value at fault.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ee::model {
struct Config;
}

namespace ee::edge {

// A request the edge refuses or could not answer: answered with `status` and {"error": what()}.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

enum class ModelKind { image, text };

// What the daemon serves under one model name; the metadata response and input validation come from it.
struct ModelDescription {
  std::string name;
  std::string version = "1";
  std::string platform = "eesplit_safetensors";  // the protocol's "<project>_<format>"
  ModelKind kind = ModelKind::image;
  int image_size = 0;  // image: pixels per side
  int channels = 1;    // image
  std::vector<std::string> labels;
  int max_batch = 64;                  // N above it is refused (400)
  std::size_t max_text_bytes = 16384;  // text: longer elements are refused (400)

  // kind, image size, channels and labels from a model's config.json.
  static ModelDescription from_config(std::string name, const model::Config& config);
  int num_labels() const { return static_cast<int>(labels.size()); }
  std::size_t pixels_per_sample() const {
    return static_cast<std::size_t>(channels) * static_cast<std::size_t>(image_size) *
           static_cast<std::size_t>(image_size);
  }
  std::string input_name() const { return kind == ModelKind::image ? "image" : "text"; }
};

// The model's outputs, in the order a response lists them when the request names none.
enum class Output {
  label,
  label_name,
  probabilities,
  exit_layer,
  answered_by,
  split,
  edge_us,
  network_us,
  cloud_us
};
inline constexpr std::size_t kNumOutputs = 9;
std::string_view output_name(Output o);
std::string_view output_datatype(Output o);  // "INT64", "BYTES", "FP32" or "INT32"

struct RequestedOutput {
  Output output;
  bool binary = false;  // returned with the binary tensor data extension
};

// What the response needs from its request once the request itself has gone to the model.
struct ResponseFormat {
  std::string model_name;
  std::optional<std::string> id;         // echoed when the request gave one
  std::vector<RequestedOutput> outputs;  // in response order
  int batch = 0;
};

struct InferRequest {
  ResponseFormat format;  // format.model_name: the model it is for; format.batch: N
  // image: N * C * S * S pixels, CHW per sample (the layout MultiExitModel::embed_images takes)
  std::vector<uint8_t> pixels;
  std::vector<std::string> texts;  // text: N elements
  // Triton's request parameter "timeout" (microseconds), when given: the client's own deadline.
  std::optional<std::chrono::microseconds> timeout;

  int batch() const { return format.batch; }
};

enum class AnsweredBy { edge, cloud, degraded };
std::string_view answered_by_name(AnsweredBy a);

// How one sample was answered.
struct SampleResult {
  int64_t label = 0;
  std::vector<float> probabilities;  // num_labels values
  int32_t exit_layer = 0;
  AnsweredBy answered_by = AnsweredBy::edge;
  int32_t split = 0;
  float edge_us = 0, network_us = 0, cloud_us = 0;
};

struct InferResult {
  std::vector<SampleResult> samples;  // one per sample, in request order
};

// An HTTP body; json_length is set when binary tensor data follows the JSON (the value of the
// Inference-Header-Content-Length header, and the reason for Content-Type application/octet-stream).
struct EncodedBody {
  std::string body;
  std::optional<std::size_t> json_length;
};

// Parses POST /v2/models/{name}/infer's body for `model`. json_length: the Inference-Header-Content-Length
// header's value when present (the JSON's length; binary input data follows it). Throws HttpError 400
// naming the problem.
InferRequest parse_infer_request(const ModelDescription& model, std::string_view body,
                                 std::optional<std::size_t> json_length = std::nullopt);
// Parses the Inference-Header-Content-Length header's text; HttpError 400 unless a decimal count.
std::size_t parse_json_length(std::string_view header);

// The response to a parsed request. Throws std::invalid_argument when `result` does not fit the request
// and the model (a sample count, a probability vector's size, a label out of range, a NaN): a defect of
// the caller, not of the client's input.
EncodedBody encode_infer_response(const ModelDescription& model, const ResponseFormat& format,
                                  const InferResult& result);

// GET /v2/models/{name}
std::string encode_model_metadata(const ModelDescription& model);
// GET /v2
std::string encode_server_metadata(std::string_view name, std::string_view version);
// {"error": message}
std::string encode_error(std::string_view message);

}  // namespace ee::edge
