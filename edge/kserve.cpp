#include "edge/kserve.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/model/config.hpp"
#include "common/text/unicode.hpp"

namespace ee::edge {
namespace {

using nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "binary tensor data is little-endian and is copied as is");

constexpr std::array<Output, kNumOutputs> kOutputs{
    Output::label, Output::label_name, Output::probabilities, Output::exit_layer, Output::answered_by,
    Output::split, Output::edge_us,    Output::network_us,    Output::cloud_us};

HttpError bad_request(const std::string& message) {
  return HttpError(400, message);
}

std::string in_quotes(std::string_view s) {
  std::string q(1, '\'');
  q.append(s).push_back('\'');
  return q;
}

std::string number_text(double v) {
  std::array<char, 32> buf;
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return ec == std::errc() ? std::string(buf.data(), end) : std::string("?");
}

std::string shape_text(std::span<const int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// A value in an error message: scalars as JSON (long ones cut short), containers by their type, so a
// message never grows with (or recurses into) what the client sent.
std::string describe(const json& v) {
  if (v.is_structured()) return std::string("an ") + v.type_name();
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// ---- numeric tensor data ----------------------------------------------------------------------------

// A request is a few levels of objects around tensors of at most four dimensions. Deeper JSON is refused
// while it is parsed, before it costs memory (a DOM node per bracket) or stack.
constexpr std::size_t kMaxDepth = 16;

// A tensor's values and how the JSON nested them.
struct Numbers {
  std::vector<double> values;
  std::vector<int64_t> dims;  // array length at each nesting depth; flat data has one
  bool ragged = false;        // arrays at one depth differ in length, or values sit at different depths
};

// Records that an array at `depth` closed with `count` elements.
void note_array(std::vector<int64_t>& dims, std::size_t depth, int64_t count, bool& ragged) {
  if (dims.size() <= depth) dims.resize(depth + 1, -1);
  if (dims[depth] == -1)
    dims[depth] = count;
  else if (dims[depth] != count)
    ragged = true;
}

void note_leaf(int& leaf_depth, int depth, bool& ragged) {
  if (leaf_depth == -1)
    leaf_depth = depth;
  else if (leaf_depth != depth)
    ragged = true;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A JSON number at s[i]: its end, or npos when it is not one by JSON's grammar or does not fit a double.
std::size_t scan_number(std::string_view s, std::size_t i, double& value) {
  const std::size_t start = i, n = s.size();
  const bool negative = i < n && s[i] == '-';
  if (negative) ++i;
  const std::size_t digits = i;
  uint64_t integer = 0;
  if (i < n && s[i] == '0') {
    ++i;
  } else if (i < n && is_digit(s[i])) {
    for (; i < n && is_digit(s[i]); ++i) integer = integer * 10 + static_cast<uint64_t>(s[i] - '0');
  } else {
    return std::string_view::npos;
  }
  // Pixels are mostly short integers: exact in a double, no need for from_chars.
  if (i - digits <= 15 && (i >= n || (s[i] != '.' && s[i] != 'e' && s[i] != 'E'))) {
    value = negative ? -static_cast<double>(integer) : static_cast<double>(integer);
    return i;
  }
  if (i < n && s[i] == '.') {
    if (++i >= n || !is_digit(s[i])) return std::string_view::npos;
    while (i < n && is_digit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    if (++i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !is_digit(s[i])) return std::string_view::npos;
    while (i < n && is_digit(s[i])) ++i;
  }
  const auto [end, ec] = std::from_chars(s.data() + start, s.data() + i, value);
  if (ec != std::errc() || end != s.data() + i) return std::string_view::npos;
  return i;
}

// The array of numbers (nested to any depth) that starts at s[pos] == '['. Returns the position after it,
// or npos when it holds anything else or is not well-formed: the general JSON parser then takes it and
// says what is wrong.
std::size_t scan_numbers(std::string_view s, std::size_t pos, Numbers& out) {
  out = Numbers{};
  std::vector<int64_t> counts{0};  // elements so far in each open array
  int leaf_depth = -1;
  enum { value_or_close, value, comma_or_close } expect = value_or_close;
  std::size_t i = pos + 1;
  while (true) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size()) return std::string_view::npos;
    const char c = s[i];
    if (expect != comma_or_close && c == '[') {
      if (counts.size() >= kMaxDepth) return std::string_view::npos;
      ++counts.back();
      counts.push_back(0);
      expect = value_or_close;
      ++i;
    } else if (expect != comma_or_close && (c == '-' || is_digit(c))) {
      double v = 0;
      i = scan_number(s, i, v);
      if (i == std::string_view::npos) return i;
      out.values.push_back(v);
      ++counts.back();
      note_leaf(leaf_depth, static_cast<int>(counts.size()), out.ragged);
      expect = comma_or_close;
    } else if (expect == comma_or_close && c == ',') {
      expect = value;
      ++i;
    } else if (expect != value && c == ']') {
      note_array(out.dims, counts.size() - 1, counts.back(), out.ragged);
      counts.pop_back();
      ++i;
      if (counts.empty()) return i;
      expect = comma_or_close;
    } else {
      return std::string_view::npos;
    }
  }
}

// The request's JSON with the numeric data arrays of its inputs cut out and parsed on the side. A
// general JSON parser builds a node per number and parses each with the C library; a 28x28 image is 784
// of them, which would make parsing most of the request's cost. Everything else (and any data array
// this scan does not take) goes through nlohmann::json unchanged.
struct ScannedBody {
  std::string rest;                              // the JSON with each cut-out array replaced by null
  std::vector<std::optional<Numbers>> by_input;  // index in "inputs" -> the array cut out there
};

// Walks the JSON's structure (strings skipped, keys remembered) looking for root.inputs[i].data arrays.
// Returns false when the structure does not add up: the general parser then reports the error.
bool scan_body(std::string_view s, ScannedBody& out) {
  struct Frame {
    bool object;
    bool key_expected;
    std::string_view key;  // object: the key whose value is being read
    std::size_t count;     // array: values started so far
  };
  std::vector<Frame> stack;
  std::size_t copied = 0;  // s[0, copied) is in out.rest
  const auto value_starts = [&] {
    if (!stack.empty() && !stack.back().object) ++stack.back().count;
  };
  const auto at_input_data = [&] {
    return stack.size() == 3 && stack[0].object && stack[0].key == "inputs" && !stack[1].object &&
           stack[2].object && !stack[2].key_expected && stack[2].key == "data";
  };
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (is_space(c) || c == ':') {
      ++i;
    } else if (c == '[' && at_input_data()) {
      Numbers numbers;
      const std::size_t end = scan_numbers(s, i, numbers);
      if (end == std::string_view::npos) {
        stack.push_back({false, false, {}, 0});
        ++i;
        continue;
      }
      const std::size_t input = stack[1].count - 1;
      if (out.by_input.size() <= input) out.by_input.resize(input + 1);
      out.by_input[input] = std::move(numbers);
      out.rest.append(s.substr(copied, i - copied));
      out.rest += "null";
      copied = i = end;
    } else if (c == '{' || c == '[') {
      if (stack.size() >= kMaxDepth) return false;
      value_starts();
      stack.push_back({c == '{', c == '{', {}, 0});
      ++i;
    } else if (c == '}' || c == ']') {
      if (stack.empty() || stack.back().object != (c == '}')) return false;
      stack.pop_back();
      ++i;
    } else if (c == ',') {
      if (!stack.empty() && stack.back().object) stack.back().key_expected = true;
      ++i;
    } else if (c == '"') {
      std::size_t j = i + 1;
      while (j < s.size() && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
      if (j >= s.size()) return false;
      if (!stack.empty() && stack.back().object && stack.back().key_expected) {
        stack.back().key = s.substr(i + 1, j - i - 1);
        stack.back().key_expected = false;
      } else {
        value_starts();
      }
      i = j + 1;
    } else {
      value_starts();
      while (i < s.size() && !is_space(s[i]) && s[i] != ',' && s[i] != ']' && s[i] != '}' && s[i] != ':') ++i;
    }
  }
  if (!stack.empty()) return false;
  if (!out.by_input.empty()) out.rest.append(s.substr(copied));
  return true;
}

json parse_depth_limited(std::string_view text) {
  return json::parse(text, [](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= static_cast<int>(kMaxDepth))
      throw bad_request("the JSON is nested more than " + std::to_string(kMaxDepth) + " deep");
    return true;
  });
}

json parse_json(std::string_view text, ScannedBody& scanned) {
  if (scan_body(text, scanned) && !scanned.by_input.empty()) {
    try {
      return parse_depth_limited(scanned.rest);
    } catch (const json::exception&) {
      // Parse the text as sent, so the error names a position in it.
    }
  }
  scanned = ScannedBody{};
  try {
    return parse_depth_limited(text);
  } catch (const json::exception& e) {  // a parse error, or a number past a double's range
    throw bad_request(std::string("malformed JSON: ") + e.what());
  }
}

// The general path for tensor data: any JSON array, its leaves handed to `leaf` (which throws on a wrong
// type), its nesting recorded as scan_numbers records it.
template <typename Leaf>
void flatten(const json& j, std::size_t depth, std::vector<int64_t>& dims, int& leaf_depth, bool& ragged,
             Leaf&& leaf) {
  if (!j.is_array()) {
    note_leaf(leaf_depth, static_cast<int>(depth), ragged);
    leaf(j);
    return;
  }
  note_array(dims, depth, static_cast<int64_t>(j.size()), ragged);
  for (const json& e : j) flatten(e, depth + 1, dims, leaf_depth, ragged, leaf);
}

// ---- request fields ---------------------------------------------------------------------------------

struct InputFields {
  std::string name, datatype;
  std::vector<int64_t> shape;
  const json* data = nullptr;
  std::optional<std::size_t> binary_size;
};

const json* member(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string string_field(const json& object, const char* key, const std::string& where) {
  const json* v = member(object, key);
  if (!v) throw bad_request(where + " has no \"" + key + "\"");
  if (!v->is_string()) throw bad_request(where + "'s \"" + key + "\" must be a string");
  return v->get<std::string>();
}

bool bool_parameter(const json& params, const char* key, const std::string& where, bool fallback) {
  const json* v = member(params, key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw bad_request(where + " parameter \"" + key + "\" must be true or false");
  return v->get<bool>();
}

std::optional<uint64_t> count_parameter(const json& params, const char* key, const std::string& where) {
  const json* v = member(params, key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  throw bad_request(where + " parameter \"" + key + "\" must be a non-negative integer");
}

const json& parameters_of(const json& object, const std::string& where) {
  static const json empty = json::object();
  const json* p = member(object, "parameters");
  if (!p || p->is_null()) return empty;  // some clients write absent optional fields as null
  if (!p->is_object()) throw bad_request(where + "'s \"parameters\" must be an object");
  return *p;
}

InputFields input_fields(const json& input) {
  if (!input.is_object()) throw bad_request("each of \"inputs\" must be an object");
  InputFields f;
  f.name = string_field(input, "name", "an input");
  const std::string where = "input " + in_quotes(f.name);
  f.datatype = string_field(input, "datatype", where);
  const json* shape = member(input, "shape");
  if (!shape) throw bad_request(where + " has no \"shape\"");
  if (!shape->is_array()) throw bad_request(where + "'s \"shape\" must be an array");
  for (const json& d : *shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      throw bad_request(where + "'s \"shape\" must hold non-negative integers; dimension " +
                        std::to_string(f.shape.size()) + " is " + describe(d));
    f.shape.push_back(d.get<int64_t>());
  }
  f.binary_size = count_parameter(parameters_of(input, where), "binary_data_size", where);
  f.data = member(input, "data");
  if (f.data && f.binary_size) throw bad_request(where + " has both \"data\" and binary_data_size");
  if (!f.data && !f.binary_size) throw bad_request(where + " has neither \"data\" nor binary_data_size");
  return f;
}

// Checks the batch size (the first dimension) shared by every form of input.
int batch_of(const ModelDescription& model, const InputFields& f) {
  const int64_t n = f.shape.empty() ? 0 : f.shape[0];
  if (n == 0)
    throw bad_request("input " + in_quotes(f.name) + " has batch size 0 (shape " + shape_text(f.shape) + ")");
  if (n > model.max_batch)
    throw bad_request("input " + in_quotes(f.name) + " has batch size " + std::to_string(n) +
                      "; the limit is " + std::to_string(model.max_batch));
  return static_cast<int>(n);
}

int image_batch(const ModelDescription& model, const InputFields& f) {
  const int64_t c = model.channels, s = model.image_size;
  const std::size_t rank = f.shape.size();
  const bool ok = !f.shape.empty() && ((rank == 4 && f.shape[1] == c && f.shape[2] == s && f.shape[3] == s) ||
                                       (rank == 3 && c == 1 && f.shape[1] == s && f.shape[2] == s) ||
                                       (rank == 2 && f.shape[1] == c * s * s));
  if (!ok) {
    std::string forms = "[N," + std::to_string(c) + "," + std::to_string(s) + "," + std::to_string(s) + "], ";
    if (c == 1) forms += "[N," + std::to_string(s) + "," + std::to_string(s) + "], ";
    forms += "or [N," + std::to_string(c * s * s) + "]";
    throw bad_request("input " + in_quotes(f.name) + " has shape " + shape_text(f.shape) + "; model " +
                      in_quotes(model.name) + " takes " + forms);
  }
  return batch_of(model, f);
}

int text_batch(const ModelDescription& model, const InputFields& f) {
  const bool ok = f.shape.size() == 1 || (f.shape.size() == 2 && f.shape[1] == 1);
  if (!ok)
    throw bad_request("input " + in_quotes(f.name) + " has shape " + shape_text(f.shape) + "; model " +
                      in_quotes(model.name) + " takes [N] or [N,1]");
  return batch_of(model, f);
}

// JSON data must be flat or nested exactly as the shape says.
void check_nesting(const InputFields& f, std::size_t count, std::span<const int64_t> dims, bool ragged) {
  const std::string where = "input " + in_quotes(f.name);
  if (ragged) throw bad_request(where + "'s data is ragged: its nested arrays differ in length or depth");
  std::size_t expected = 1;
  for (int64_t d : f.shape) expected *= static_cast<std::size_t>(d);
  if (count != expected)
    throw bad_request(where + " has " + std::to_string(count) + " values; shape " + shape_text(f.shape) +
                      " needs " + std::to_string(expected));
  if (dims.size() > 1 && !std::equal(dims.begin(), dims.end(), f.shape.begin(), f.shape.end()))
    throw bad_request(where + "'s data is nested as " + shape_text(dims) + "; its shape is " +
                      shape_text(f.shape));
}

uint8_t pixel(const InputFields& f, bool uint8, std::size_t k, double v) {
  if (uint8) {
    if (v >= 0 && v <= 255 && v == std::floor(v)) return static_cast<uint8_t>(v);
    throw bad_request("input " + in_quotes(f.name) + " element " + std::to_string(k) + " is " +
                      number_text(v) + "; UINT8 values are integers 0..255");
  }
  if (std::isnan(v) || std::isinf(v))
    throw bad_request("input " + in_quotes(f.name) + " element " + std::to_string(k) + " is " +
                      number_text(v) + "; FP32 pixels must be finite");
  if (v < 0 || v > 255)
    throw bad_request("input " + in_quotes(f.name) + " element " + std::to_string(k) + " is " +
                      number_text(v) + "; FP32 pixels are raw values in [0, 255], not normalised");
  return static_cast<uint8_t>(std::lround(v));
}

void read_image(const ModelDescription& model, const InputFields& f, const std::optional<Numbers>& scanned,
                std::string_view binary, InferRequest& out) {
  const std::string where = "input " + in_quotes(f.name);
  if (f.datatype != "UINT8" && f.datatype != "FP32")
    throw bad_request(where + " has datatype " + f.datatype + "; model " + in_quotes(model.name) +
                      " takes UINT8 or FP32");
  const bool uint8 = f.datatype == "UINT8";
  const int n = image_batch(model, f);
  const std::size_t count = static_cast<std::size_t>(n) * model.pixels_per_sample();
  out.pixels.resize(count);
  if (f.binary_size) {
    const std::size_t width = uint8 ? 1 : 4;
    if (binary.size() != count * width)
      throw bad_request(where + " has binary_data_size " + std::to_string(binary.size()) + "; shape " +
                        shape_text(f.shape) + " of " + f.datatype + " needs " +
                        std::to_string(count * width));
    if (width == 1) {
      std::memcpy(out.pixels.data(), binary.data(), count);
    } else {
      for (std::size_t k = 0; k < count; ++k) {
        float v;
        std::memcpy(&v, binary.data() + 4 * k, 4);
        out.pixels[k] = pixel(f, false, k, v);
      }
    }
  } else if (scanned) {
    check_nesting(f, scanned->values.size(), scanned->dims, scanned->ragged);
    for (std::size_t k = 0; k < count; ++k) out.pixels[k] = pixel(f, uint8, k, scanned->values[k]);
  } else {
    if (!f.data->is_array()) throw bad_request(where + "'s \"data\" must be an array");
    std::vector<double> values;
    std::vector<int64_t> dims;
    int leaf_depth = -1;
    bool ragged = false;
    flatten(*f.data, 0, dims, leaf_depth, ragged, [&](const json& v) {
      if (!v.is_number())
        throw bad_request(where + " element " + std::to_string(values.size()) + " is " + describe(v) +
                          ", not a number");
      values.push_back(v.get<double>());
    });
    check_nesting(f, values.size(), dims, ragged);
    for (std::size_t k = 0; k < count; ++k) out.pixels[k] = pixel(f, uint8, k, values[k]);
  }
}

void check_text(const ModelDescription& model, const InputFields& f, std::size_t k, std::string_view text) {
  const std::string what = "input " + in_quotes(f.name) + " element " + std::to_string(k);
  if (text.empty()) throw bad_request(what + " is an empty text");
  if (text.size() > model.max_text_bytes)
    throw bad_request(what + " is " + std::to_string(text.size()) + " bytes; the limit is " +
                      std::to_string(model.max_text_bytes));
  if (!text::is_valid_utf8(text)) throw bad_request(what + " is not valid UTF-8");
}

void read_text(const ModelDescription& model, const InputFields& f, const std::optional<Numbers>& scanned,
               std::string_view binary, InferRequest& out) {
  const std::string where = "input " + in_quotes(f.name);
  if (f.datatype != "BYTES")
    throw bad_request(where + " has datatype " + f.datatype + "; model " + in_quotes(model.name) +
                      " takes BYTES");
  const int n = text_batch(model, f);
  out.texts.reserve(static_cast<std::size_t>(n));
  if (f.binary_size) {
    // BYTES in binary: each element a 4-byte little-endian length, then that many bytes.
    std::size_t pos = 0;
    while (pos < binary.size()) {
      uint32_t length;
      if (binary.size() - pos < 4)
        throw bad_request(where + "'s binary data ends inside element " + std::to_string(out.texts.size()) +
                          "'s length");
      std::memcpy(&length, binary.data() + pos, 4);
      pos += 4;
      if (length > binary.size() - pos)
        throw bad_request(where + " element " + std::to_string(out.texts.size()) + "'s length " +
                          std::to_string(length) + " runs past its binary data");
      out.texts.emplace_back(binary.substr(pos, length));
      pos += length;
    }
    if (out.texts.size() != static_cast<std::size_t>(n))
      throw bad_request(where + "'s binary data holds " + std::to_string(out.texts.size()) +
                        " elements; shape " + shape_text(f.shape) + " needs " + std::to_string(n));
  } else if (scanned) {
    if (!scanned->values.empty())
      throw bad_request(where + " element 0 is " + number_text(scanned->values[0]) + ", not a string");
    check_nesting(f, 0, scanned->dims, scanned->ragged);
  } else {
    if (!f.data->is_array()) throw bad_request(where + "'s \"data\" must be an array");
    std::vector<int64_t> dims;
    int leaf_depth = -1;
    bool ragged = false;
    flatten(*f.data, 0, dims, leaf_depth, ragged, [&](const json& v) {
      if (!v.is_string())
        throw bad_request(where + " element " + std::to_string(out.texts.size()) + " is " + describe(v) +
                          ", not a string");
      out.texts.push_back(v.get<std::string>());
    });
    check_nesting(f, out.texts.size(), dims, ragged);
  }
  for (std::size_t k = 0; k < out.texts.size(); ++k) check_text(model, f, k, out.texts[k]);
}

std::vector<RequestedOutput> requested_outputs(const ModelDescription& model, const json& doc,
                                               bool binary_default) {
  std::vector<RequestedOutput> outputs;
  const json* list = member(doc, "outputs");
  if (list && !list->is_null() && !list->is_array()) throw bad_request("\"outputs\" must be an array");
  if (!list || list->is_null() || list->empty()) {
    for (Output o : kOutputs) outputs.push_back({o, binary_default});
    return outputs;
  }
  for (const json& item : *list) {
    if (!item.is_object()) throw bad_request("each of \"outputs\" must be an object");
    const std::string name = string_field(item, "name", "an output");
    const std::string where = "output " + in_quotes(name);
    const auto it =
        std::find_if(kOutputs.begin(), kOutputs.end(), [&](Output o) { return output_name(o) == name; });
    if (it == kOutputs.end()) {
      std::string names;
      for (Output o : kOutputs) names += (names.empty() ? "" : ", ") + std::string(output_name(o));
      throw bad_request("unknown output " + in_quotes(name) + "; model " + in_quotes(model.name) + " has " +
                        names);
    }
    if (std::any_of(outputs.begin(), outputs.end(),
                    [&](const RequestedOutput& r) { return r.output == *it; }))
      throw bad_request(where + " is requested twice");
    const json& params = parameters_of(item, where);
    if (const auto classes = count_parameter(params, "classification", where); classes && *classes != 0)
      throw bad_request(where + " asks for classification, an extension this server does not implement");
    outputs.push_back({*it, bool_parameter(params, "binary_data", where, binary_default)});
  }
  return outputs;
}

// ---- response ---------------------------------------------------------------------------------------

void append_string(std::string& out, std::string_view s) {
  out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

template <typename T>
void append_number(std::string& out, T v) {
  std::array<char, 32> buf;
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), end);
}

template <typename T>
void append_raw(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void check_result(const ModelDescription& model, const ResponseFormat& format, const InferResult& result) {
  if (result.samples.size() != static_cast<std::size_t>(format.batch))
    throw std::invalid_argument("result has " + std::to_string(result.samples.size()) +
                                " samples; the request " + std::to_string(format.batch));
  for (std::size_t b = 0; b < result.samples.size(); ++b) {
    const SampleResult& s = result.samples[b];
    const std::string what = "result sample " + std::to_string(b);
    if (s.probabilities.size() != static_cast<std::size_t>(model.num_labels()))
      throw std::invalid_argument(what + " has " + std::to_string(s.probabilities.size()) +
                                  " probabilities; the model has " + std::to_string(model.num_labels()) +
                                  " labels");
    if (s.label < 0 || s.label >= model.num_labels())
      throw std::invalid_argument(what + " has label " + std::to_string(s.label) + " out of range");
    const auto finite = [](float v) { return std::isfinite(v); };
    if (!std::all_of(s.probabilities.begin(), s.probabilities.end(), finite) || !finite(s.edge_us) ||
        !finite(s.network_us) || !finite(s.cloud_us))
      throw std::invalid_argument(what + " holds a value that is not finite");
    if (s.answered_by != AnsweredBy::edge && s.answered_by != AnsweredBy::cloud &&
        s.answered_by != AnsweredBy::degraded)
      throw std::invalid_argument(what + " has an unknown answered_by");
  }
}

// One value of output `o` for sample `s`, in JSON (json == true) or in binary.
void append_value(std::string& out, Output o, const ModelDescription& model, const SampleResult& s,
                  bool as_json) {
  const auto text = [&](std::string_view v) {
    if (as_json) {
      append_string(out, v);
    } else {
      append_raw(out, static_cast<uint32_t>(v.size()));
      out += v;
    }
  };
  const auto number = [&](auto v) {
    if (as_json)
      append_number(out, v);
    else
      append_raw(out, v);
  };
  switch (o) {
    case Output::label:
      return number(s.label);
    case Output::label_name:
      return text(model.labels[static_cast<std::size_t>(s.label)]);
    case Output::probabilities:
      for (std::size_t i = 0; i < s.probabilities.size(); ++i) {
        if (as_json && i) out += ',';
        number(s.probabilities[i]);
      }
      return;
    case Output::exit_layer:
      return number(s.exit_layer);
    case Output::answered_by:
      return text(answered_by_name(s.answered_by));
    case Output::split:
      return number(s.split);
    case Output::edge_us:
      return number(s.edge_us);
    case Output::network_us:
      return number(s.network_us);
    case Output::cloud_us:
      return number(s.cloud_us);
  }
}

}  // namespace

ModelDescription ModelDescription::from_config(std::string name, const model::Config& config) {
  ModelDescription d;
  d.name = std::move(name);
  d.kind = config.architecture == model::Architecture::vit ? ModelKind::image : ModelKind::text;
  d.image_size = config.image_size;
  d.channels = config.num_channels;
  d.labels = config.early_exit.labels;
  return d;
}

std::string_view output_name(Output o) {
  switch (o) {
    case Output::label:
      return "label";
    case Output::label_name:
      return "label_name";
    case Output::probabilities:
      return "probabilities";
    case Output::exit_layer:
      return "exit_layer";
    case Output::answered_by:
      return "answered_by";
    case Output::split:
      return "split";
    case Output::edge_us:
      return "edge_us";
    case Output::network_us:
      return "network_us";
    case Output::cloud_us:
      return "cloud_us";
  }
  return "?";
}

std::string_view output_datatype(Output o) {
  switch (o) {
    case Output::label:
      return "INT64";
    case Output::label_name:
    case Output::answered_by:
      return "BYTES";
    case Output::exit_layer:
    case Output::split:
      return "INT32";
    case Output::probabilities:
    case Output::edge_us:
    case Output::network_us:
    case Output::cloud_us:
      return "FP32";
  }
  return "?";
}

std::string_view answered_by_name(AnsweredBy a) {
  switch (a) {
    case AnsweredBy::edge:
      return "edge";
    case AnsweredBy::cloud:
      return "cloud";
    case AnsweredBy::degraded:
      return "degraded";
  }
  return "?";
}

std::size_t parse_json_length(std::string_view header) {
  std::size_t v = 0;
  const auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), v);
  if (header.empty() || ec != std::errc() || end != header.data() + header.size())
    throw bad_request("Inference-Header-Content-Length " + in_quotes(header) + " is not a byte count");
  return v;
}

InferRequest parse_infer_request(const ModelDescription& model, std::string_view body,
                                 std::optional<std::size_t> json_length) {
  if (json_length && *json_length > body.size())
    throw bad_request("Inference-Header-Content-Length is " + std::to_string(*json_length) +
                      " but the body is only " + std::to_string(body.size()) + " bytes");
  const std::string_view text = json_length ? body.substr(0, *json_length) : body;
  const std::string_view binary = json_length ? body.substr(*json_length) : std::string_view{};

  ScannedBody scanned;
  const json doc = parse_json(text, scanned);
  if (!doc.is_object()) throw bad_request("the request must be a JSON object");

  InferRequest request;
  request.format.model_name = model.name;
  if (const json* id = member(doc, "id")) {
    if (!id->is_string()) throw bad_request("\"id\" must be a string");
    request.format.id = id->get<std::string>();
  }
  const json& params = parameters_of(doc, "the request");
  if (const auto timeout = count_parameter(params, "timeout", "request"))
    request.timeout =
        std::chrono::microseconds(static_cast<int64_t>(std::min<uint64_t>(*timeout, INT64_MAX)));
  request.format.outputs =
      requested_outputs(model, doc, bool_parameter(params, "binary_data_output", "request", false));

  const json* inputs = member(doc, "inputs");
  if (!inputs) throw bad_request("the request has no \"inputs\"");
  if (!inputs->is_array()) throw bad_request("\"inputs\" must be an array");
  const std::string expected = model.input_name();
  if (inputs->empty())
    throw bad_request("\"inputs\" is empty; model " + in_quotes(model.name) + " takes " +
                      in_quotes(expected));
  if (inputs->size() > 1)
    throw bad_request("model " + in_quotes(model.name) + " takes one input, " + in_quotes(expected) +
                      "; the request has " + std::to_string(inputs->size()));
  const InputFields f = input_fields((*inputs)[0]);
  if (f.name != expected)
    throw bad_request("unknown input " + in_quotes(f.name) + "; model " + in_quotes(model.name) + " takes " +
                      in_quotes(expected));

  const std::size_t declared = f.binary_size.value_or(0);
  if (f.binary_size && !json_length)
    throw bad_request("input " + in_quotes(f.name) +
                      " has binary_data_size but the request has no Inference-Header-Content-Length");
  if (declared != binary.size())
    throw bad_request("the body holds " + std::to_string(binary.size()) +
                      " bytes of binary data after its JSON; the inputs declare " + std::to_string(declared));

  const std::optional<Numbers> none;
  const std::optional<Numbers>& numbers = scanned.by_input.empty() ? none : scanned.by_input[0];
  if (model.kind == ModelKind::image)
    read_image(model, f, numbers, binary, request);
  else
    read_text(model, f, numbers, binary, request);
  request.format.batch = static_cast<int>(f.shape[0]);
  return request;
}

EncodedBody encode_infer_response(const ModelDescription& model, const ResponseFormat& format,
                                  const InferResult& result) {
  check_result(model, format, result);
  EncodedBody encoded;
  std::string& out = encoded.body;
  std::string binary;
  out.reserve(256 + result.samples.size() * (32 + 16 * static_cast<std::size_t>(model.num_labels())));
  out += "{\"model_name\":";
  append_string(out, format.model_name);
  out += ",\"model_version\":";
  append_string(out, model.version);
  if (format.id) {
    out += ",\"id\":";
    append_string(out, *format.id);
  }
  out += ",\"outputs\":[";
  for (std::size_t i = 0; i < format.outputs.size(); ++i) {
    const RequestedOutput& r = format.outputs[i];
    if (i) out += ',';
    out += "{\"name\":\"";
    out += output_name(r.output);
    out += "\",\"datatype\":\"";
    out += output_datatype(r.output);
    out += "\",\"shape\":[";
    append_number(out, format.batch);
    if (r.output == Output::probabilities) {
      out += ',';
      append_number(out, model.num_labels());
    }
    out += ']';
    if (r.binary) {
      const std::size_t start = binary.size();
      for (const SampleResult& s : result.samples) append_value(binary, r.output, model, s, false);
      out += ",\"parameters\":{\"binary_data_size\":";
      append_number(out, binary.size() - start);
      out += "}}";
    } else {
      out += ",\"data\":[";
      for (std::size_t b = 0; b < result.samples.size(); ++b) {
        if (b) out += ',';
        append_value(out, r.output, model, result.samples[b], true);
      }
      out += "]}";
    }
  }
  out += "]}";
  if (std::any_of(format.outputs.begin(), format.outputs.end(),
                  [](const RequestedOutput& r) { return r.binary; })) {
    encoded.json_length = out.size();
    out += binary;
  }
  return encoded;
}

std::string encode_model_metadata(const ModelDescription& model) {
  using ordered = nlohmann::ordered_json;
  ordered input = {{"name", model.input_name()}};
  if (model.kind == ModelKind::image) {
    input["datatype"] = "UINT8";
    input["shape"] = {-1, model.channels, model.image_size, model.image_size};
  } else {
    input["datatype"] = "BYTES";
    input["shape"] = {-1};
  }
  ordered outputs = ordered::array();
  for (Output o : kOutputs) {
    ordered shape = {-1};
    if (o == Output::probabilities) shape.push_back(model.num_labels());
    outputs.push_back({{"name", output_name(o)}, {"datatype", output_datatype(o)}, {"shape", shape}});
  }
  const ordered doc = {{"name", model.name},
                       {"versions", {model.version}},
                       {"platform", model.platform},
                       {"inputs", ordered::array({input})},
                       {"outputs", outputs}};
  return doc.dump();
}

std::string encode_server_metadata(std::string_view name, std::string_view version) {
  const nlohmann::ordered_json doc = {{"name", name},
                                      {"version", version},
                                      {"extensions", nlohmann::ordered_json::array({"binary_tensor_data"})}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode_error(std::string_view message) {
  const nlohmann::ordered_json doc = {{"error", message}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace ee::edge
