// SAX parse of the safetensors header: strict UTF-8, depth limit, duplicate keys, unsigned
// integers only, and no exceptions or DOM for any input (docs/safetensors.md).
#include "safetensors/header_parser.h"

#include "safetensors/utf8.h"

#include <unordered_set>

#include <nlohmann/json.hpp>

namespace lv::st {
namespace {

using json = nlohmann::json;

// Where the parser is: the root object, a tensor entry, a field inside it, metadata, or a
// value nobody reads (unknown fields are skipped like the crate does, but still parsed).
enum class Ctx { kRoot, kEntry, kShape, kOffsets, kMetadata, kSkip };

class Handler : public nlohmann::json_sax<json> {
 public:
  Handler(ParsedHeader& out, const Limits& limits) : out_(out), limits_(limits) {}

  std::string error;
  std::string broken;  // a broken invariant of the handler itself (not of the input)

  bool null() override {
    if (!check_depth_scalar()) return false;
    if (top() == Ctx::kRoot && key_ == "__metadata__") return after_metadata_null();
    return scalar("null");
  }
  bool boolean(bool) override { return check_depth_scalar() && scalar("a boolean"); }
  bool number_integer(number_integer_t v) override {
    return check_depth_scalar() && scalar("a negative number (" + std::to_string(v) + ")");
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (!check_depth_scalar()) return false;
    if (top() == Ctx::kShape) {
      if (entry_.shape.size() >= limits_.max_dims)
        return fail("tensor '" + entry_.name + "': shape has more than " + std::to_string(limits_.max_dims) + " dimensions");
      entry_.shape.push_back(v);
      return true;
    }
    if (top() == Ctx::kOffsets) {
      if (offsets_ >= 2) return fail("tensor '" + entry_.name + "': data_offsets must hold exactly two numbers");
      (offsets_ == 0 ? entry_.begin : entry_.end) = v;
      ++offsets_;
      return true;
    }
    return scalar("the number " + std::to_string(v));
  }
  bool number_float(number_float_t, const string_t& raw) override {
    return check_depth_scalar() && scalar("the number " + raw + " (only non-negative integers without fraction or exponent are allowed)");
  }
  bool string(string_t& v) override {
    if (!check_depth_scalar()) return false;
    if (top() == Ctx::kMetadata) {
      if (out_.metadata.size() >= limits_.max_metadata_entries) return fail("__metadata__ has too many entries");
      out_.metadata[key_] = v;
      return true;
    }
    if (top() == Ctx::kEntry && key_ == "dtype") {
      auto d = dtype_from_name(v);
      if (!d) return fail("tensor '" + entry_.name + "': unknown dtype \"" + v + "\"");
      entry_.dtype = *d;
      have_ |= kHaveDtype;
      return true;
    }
    return scalar("a string");
  }
  bool binary(binary_t&) override { return fail("binary value"); }

  bool start_object(std::size_t) override {
    if (!push_depth()) return false;
    if (stack_.empty()) {
      stack_.push_back(Ctx::kRoot);
      return true;
    }
    Ctx t = top();
    if (t == Ctx::kRoot) {
      if (key_ == "__metadata__") {
        out_.has_metadata = true;
        stack_.push_back(Ctx::kMetadata);
        return true;
      }
      entry_ = HeaderEntry{};
      entry_.name = key_;
      have_ = 0;
      offsets_ = 0;
      seen_fields_ = 0;
      stack_.push_back(Ctx::kEntry);
      return true;
    }
    if (t == Ctx::kMetadata) return fail("__metadata__ value of \"" + key_ + "\" must be a string, not an object");
    if (t == Ctx::kShape || t == Ctx::kOffsets)
      return fail("tensor '" + entry_.name + "': " + (t == Ctx::kShape ? "shape" : "data_offsets") + " must hold numbers, not objects");
    if (t == Ctx::kEntry && (key_ == "shape" || key_ == "data_offsets" || key_ == "dtype"))
      return fail("tensor '" + entry_.name + "': " + key_ + " must not be an object");
    stack_.push_back(Ctx::kSkip);
    return true;
  }

  bool key(string_t& k) override {
    Ctx t = top();
    if (t == Ctx::kRoot) {
      if (!root_keys_.insert(k).second)
        return fail(k == "__metadata__" ? "__metadata__ appears twice" : "tensor '" + k + "' appears twice");
      if (root_keys_.size() > limits_.max_tensors + 1) return fail("more than " + std::to_string(limits_.max_tensors) + " tensors");
      if (k != "__metadata__") {
        if (k.empty()) return fail("a tensor has an empty name");
        if (k.size() > limits_.max_name_bytes)
          return fail("a tensor name is " + std::to_string(k.size()) + " bytes, the limit is " + std::to_string(limits_.max_name_bytes));
        for (unsigned char c : k)
          if (c < 0x20 || c == 0x7f)
            return fail("tensor name '" + printable(k) + "' contains control character 0x" + hex(c));
      }
    } else if (t == Ctx::kMetadata) {
      if (out_.metadata.count(k)) return fail("__metadata__ key \"" + k + "\" appears twice");
    } else if (t == Ctx::kEntry) {
      // The three schema fields must be unique; unknown fields are ignored, as the crate does.
      const unsigned bit = k == "dtype" ? 1u : k == "shape" ? 2u : k == "data_offsets" ? 4u : 0u;
      if (bit & seen_fields_) return fail("tensor '" + entry_.name + "': field \"" + k + "\" appears twice");
      seen_fields_ |= bit;
    }
    key_ = k;
    return true;
  }

  bool end_object() override {
    Ctx t = top();
    stack_.pop_back();
    --depth_;
    if (t == Ctx::kEntry) {
      if (!(have_ & kHaveDtype)) return fail("tensor '" + entry_.name + "': missing field dtype");
      if (!(have_ & kHaveShape)) return fail("tensor '" + entry_.name + "': missing field shape");
      if (!(have_ & kHaveOffsets)) return fail("tensor '" + entry_.name + "': missing field data_offsets");
      if (entry_.name == "__metadata__") return fail("a tensor may not be named __metadata__");
      out_.entries.push_back(std::move(entry_));
      entry_ = HeaderEntry{};
    }
    return true;
  }

  bool start_array(std::size_t) override {
    if (!push_depth()) return false;
    if (stack_.empty()) return fail("the header root must be an object, not an array");
    Ctx t = top();
    if (t == Ctx::kEntry && key_ == "shape") {
      have_ |= kHaveShape;
      stack_.push_back(Ctx::kShape);
      return true;
    }
    if (t == Ctx::kEntry && key_ == "data_offsets") {
      have_ |= kHaveOffsets;
      stack_.push_back(Ctx::kOffsets);
      return true;
    }
    if (t == Ctx::kRoot)
      return fail(key_ == "__metadata__" ? "__metadata__ must be an object or null, not an array"
                                         : "tensor '" + key_ + "' must be an object, not an array");
    if (t == Ctx::kMetadata) return fail("__metadata__ value of \"" + key_ + "\" must be a string, not an array");
    if (t == Ctx::kShape || t == Ctx::kOffsets)
      return fail("tensor '" + entry_.name + "': " + (t == Ctx::kShape ? "shape" : "data_offsets") + " must hold numbers, not arrays");
    if (t == Ctx::kEntry && key_ == "dtype") return fail("tensor '" + entry_.name + "': dtype must be a string");
    stack_.push_back(Ctx::kSkip);
    return true;
  }

  bool end_array() override {
    Ctx t = top();
    stack_.pop_back();
    --depth_;
    if (t == Ctx::kOffsets && offsets_ != 2)
      return fail("tensor '" + entry_.name + "': data_offsets must hold exactly two numbers, has " + std::to_string(offsets_));
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    if (error.empty()) error = "JSON syntax error at header byte " + std::to_string(position) + " (" + short_what(ex.what()) + ")";
    return false;
  }

 private:
  static constexpr unsigned kHaveDtype = 1, kHaveShape = 2, kHaveOffsets = 4;

  static std::string short_what(const char* w) {
    std::string s(w);
    auto p = s.find("] ");
    return p == std::string::npos ? s : s.substr(p + 2);
  }
  static std::string hex(unsigned char c) {
    const char* d = "0123456789abcdef";
    return {d[c >> 4], d[c & 15]};
  }
  static std::string printable(const std::string& s) {
    std::string o;
    for (unsigned char c : s) o += (c < 0x20 || c == 0x7f) ? std::string("\\x") + hex(c) : std::string(1, static_cast<char>(c));
    return o;
  }

  Ctx top() const { return stack_.empty() ? Ctx::kSkip : stack_.back(); }

  bool push_depth() {
    if (++depth_ > limits_.max_json_depth) return fail("JSON nested deeper than " + std::to_string(limits_.max_json_depth));
    return true;
  }
  bool check_depth_scalar() {
    if (stack_.empty()) return fail("the header root must be an object");
    return true;
  }

  // A value at the root follows its key, which key() recorded (or the parse stopped there).
  bool after_metadata_null() {
    if (!root_keys_.count("__metadata__")) {
      broken = "the header parser saw __metadata__: null without recording its key";
      return false;
    }
    return true;  // null metadata means absent
  }

  // A scalar where the schema expects something else (or an ignored field).
  bool scalar(const std::string& what) {
    switch (top()) {
      case Ctx::kRoot: return fail(key_ == "__metadata__" ? "__metadata__ must be an object or null, not " + what
                                                          : "tensor '" + key_ + "' must be an object, not " + what);
      case Ctx::kMetadata: return fail("__metadata__ value of \"" + key_ + "\" must be a string, not " + what);
      case Ctx::kShape: return fail("tensor '" + entry_.name + "': shape holds " + what);
      case Ctx::kOffsets: return fail("tensor '" + entry_.name + "': data_offsets holds " + what);
      case Ctx::kEntry:
        if (key_ == "dtype" || key_ == "shape" || key_ == "data_offsets")
          return fail("tensor '" + entry_.name + "': field " + key_ + " holds " + what);
        return true;  // unknown field: ignored
      case Ctx::kSkip: return true;
    }
    return true;
  }

  bool fail(const std::string& msg) {
    if (error.empty()) error = msg;
    return false;
  }

  ParsedHeader& out_;
  const Limits& limits_;
  std::vector<Ctx> stack_;
  uint32_t depth_ = 0;
  std::string key_;
  std::unordered_set<std::string> root_keys_;
  unsigned seen_fields_ = 0;
  HeaderEntry entry_;
  unsigned have_ = 0;
  int offsets_ = 0;
};

}  // namespace

Result<ParsedHeader> parse_header_json(std::string_view text, const Limits& limits) {
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xef && static_cast<unsigned char>(text[1]) == 0xbb &&
      static_cast<unsigned char>(text[2]) == 0xbf)
    return make_error(ErrorCode::kBadInput, "header starts with a UTF-8 byte order mark");
  if (size_t nul = text.find('\0'); nul != std::string_view::npos)
    return make_error(ErrorCode::kBadInput, "header contains a NUL byte at offset " + std::to_string(nul));
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos)
    return make_error(ErrorCode::kBadInput, "header is not valid UTF-8 at byte " + std::to_string(bad));
  ParsedHeader out;
  Handler h(out, limits);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &h, json::input_format_t::json, /*strict=*/true,
                         /*ignore_comments=*/false);
  } catch (const std::exception& e) {  // defensive: the handler never throws, nlohmann should not
    return make_error(ErrorCode::kBadInput, std::string("header JSON rejected: ") + e.what());
  }
  if (!h.broken.empty()) return internal_error(h.broken);
  if (!ok || !h.error.empty())
    return make_error(ErrorCode::kBadInput, h.error.empty() ? "header is not valid JSON" : h.error);
  return out;
}

}  // namespace lv::st
