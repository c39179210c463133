// LoRA loader: tensor names → canonical parts on BFL rows, with scales and findings.
#include "lora/loader.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flux/layout.h"
#include "lora/detect.h"
#include "lora/keys.h"
#include "lora/placement.h"

namespace lv {
namespace {

using st::TensorView;

bool contains(std::string_view s, std::string_view p) { return s.find(p) != std::string_view::npos; }

// ---- architecture signatures (docs/formats.md#other-architectures; fixtures anima, krea2, qwen) ----

struct ArchSignature {
  std::string_view architecture;
  std::string_view patterns[6];
};

constexpr ArchSignature kOtherArchitectures[] = {
    {"Qwen-Image", {"img_mod.1", "txt_mod.1", "img_mlp.net", "txt_mlp.net", "lora_unet_transformer_blocks_", "txt_norm"}},
    {"Anima (Cosmos-style blocks)", {".cross_attn.", "_cross_attn_", ".self_attn.", "_self_attn_", "adaln_modulation", ""}},
    {"Krea 2", {"_attn_wq", "_attn_wk", "_attn_wv", "_attn_wo", "_mlp_gate", "_attn_gate"}},
};

// Names no other architecture of kOtherArchitectures shares (BFL names, single blocks, top
// level): seeing one of these rules the others out. Diffusers double-block names are shared
// with Qwen-Image, so they are no evidence.
bool flux_specific(const ParsedKey& k) {
  return k.naming != Naming::kDiffusers || contains(k.module, "single_transformer_blocks.") ||
         !contains(k.module, "transformer_blocks.");
}

// ---- PEFT metadata (lora_adapter_metadata) ----

struct PeftConfig {
  bool present = false;
  double r = 0, alpha = 0;
  bool rslora = false;
  std::map<std::string, double> rank_pattern, alpha_pattern;
};

// A pattern key p matches module n when n == p or n ends with "." + p.
const double* match_pattern(const std::map<std::string, double>& patterns, const std::string& module) {
  const double* best = nullptr;
  size_t best_len = 0;
  for (const auto& [p, v] : patterns) {
    bool hit = module == p || (module.size() > p.size() && module.compare(module.size() - p.size(), p.size(), p) == 0 &&
                               module[module.size() - p.size() - 1] == '.');
    if (hit && p.size() >= best_len) {
      best = &v;
      best_len = p.size();
    }
  }
  return best;
}

// Largest nesting depth of a JSON text, counted outside strings, so a hostile metadata
// string cannot drive a deep parse.
size_t json_depth(std::string_view text) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') in_string = true;
    else if (c == '{' || c == '[') max_depth = std::max(max_depth, ++depth);
    else if ((c == '}' || c == ']') && depth > 0) --depth;
  }
  return max_depth;
}

PeftConfig read_peft_config(const st::SafetensorsFile& file, std::vector<Finding>& findings) {
  PeftConfig cfg;
  auto it = file.metadata().find("lora_adapter_metadata");
  if (it == file.metadata().end()) return cfg;
  auto bad = [&](const std::string& why) {
    findings.push_back({"lora.metadata.invalid", Severity::kWarning, "lora_adapter_metadata",
                        "metadata entry lora_adapter_metadata ignored: " + why});
    return PeftConfig{};
  };
  if (json_depth(it->second) > 16) return bad("nested deeper than 16");
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  // Accept {"transformer.r": …} (flat), {"transformer": {"r": …}} (nested) and {"r": …}.
  const nlohmann::json* cfg_obj = &j;
  nlohmann::json flat = nlohmann::json::object();
  if (j.contains("transformer") && j["transformer"].is_object()) cfg_obj = &j["transformer"];
  else {
    bool any_prefixed = false;
    for (auto& [k, v] : j.items())
      if (k.rfind("transformer.", 0) == 0) {
        flat[k.substr(12)] = v;
        any_prefixed = true;
      }
    if (any_prefixed) cfg_obj = &flat;
  }
  auto number = [&](const char* key, double& out) {
    auto f = cfg_obj->find(key);
    if (f != cfg_obj->end() && f->is_number()) out = f->get<double>();
  };
  number("r", cfg.r);
  number("lora_alpha", cfg.alpha);
  auto rs = cfg_obj->find("use_rslora");
  if (rs != cfg_obj->end() && rs->is_boolean()) cfg.rslora = rs->get<bool>();
  for (auto [key, dest] : {std::pair{"rank_pattern", &cfg.rank_pattern}, std::pair{"alpha_pattern", &cfg.alpha_pattern}}) {
    auto f = cfg_obj->find(key);
    if (f == cfg_obj->end() || !f->is_object()) continue;
    for (auto& [k, v] : f->items())
      if (v.is_number()) (*dest)[k] = v.get<double>();
  }
  if (!(cfg.r > 0) || !std::isfinite(cfg.alpha) || !std::isfinite(cfg.r)) {
    if (cfg.r != 0 || cfg.alpha != 0) return bad("r must be positive and lora_alpha finite");
    return PeftConfig{};
  }
  cfg.present = true;
  return cfg;
}

// ---- phase 1: every tensor by name ----

using Keyed = std::vector<KeyedTensor>;

// Absolute RMSNorm scales: set-values, not deltas (docs/formats.md#norm-scales).
bool is_norm_scale(const std::string& name) {
  return name.size() > 6 && (contains(name, "_norm.scale") || contains(name, ".norm_q.weight") ||
                             contains(name, ".norm_k.weight") || contains(name, ".norm_added_q.weight") ||
                             contains(name, ".norm_added_k.weight"));
}

// LoRA tensors with their parsed keys; text encoders and norm scales go to model.passthrough,
// the rest to `unknown`.
Keyed classify_tensors(const st::SafetensorsFile& file, LoraModel& model, std::vector<const TensorView*>& unknown) {
  Keyed keyed;
  for (const TensorView& t : file.tensors()) {
    if (auto te = text_encoder_label(t.name)) model.passthrough.push_back({t.name, "text encoder (" + *te + ")"});
    else if (auto k = parse_key(t.name)) keyed.push_back({&t, std::move(*k)});
    else if (is_norm_scale(t.name)) model.passthrough.push_back({t.name, "absolute norm scale (a set-value, not a delta)", false});
    else unknown.push_back(&t);
  }
  return keyed;
}

// ---- phase 2: files that are clearly another model, or hold no LoRA tensor ----

// The evidence is the transformer's tensors, keyed or unknown: a text-encoder or norm-scale
// tensor (passed through) says nothing of it, and a converted group may hold only those.
Status refuse_other_architectures(const st::SafetensorsFile& file, const Keyed& keyed,
                                  const std::vector<const TensorView*>& unknown) {
  if (std::any_of(keyed.begin(), keyed.end(), [](const KeyedTensor& k) { return flux_specific(k.key); })) return {};
  std::vector<const TensorView*> evidence = unknown;
  for (const KeyedTensor& k : keyed) evidence.push_back(k.tensor);
  for (const auto& sig : kOtherArchitectures) {
    int64_t hits = 0;
    std::string example;
    auto hit = [&](const std::string& name) {
      if (hits++ == 0) example = name;
    };
    for (const TensorView* t : evidence)
      if (std::any_of(std::begin(sig.patterns), std::end(sig.patterns),
                      [&](std::string_view p) { return !p.empty() && contains(t->name, p); }))
        hit(t->name);
    // Diffusers block names with kohya suffixes and no FLUX.1-only module: Qwen-Image.
    if (sig.architecture == "Qwen-Image")
      for (const KeyedTensor& k : keyed)
        if (k.key.dialect.id == Dialect::kDiffusersKohyaSuffix) hit(k.tensor->name);
    if (hits > 0)
      return make_error(ErrorCode::kBadInput,
                        file.path() + ": not a FLUX LoRA: it looks like " + std::string(sig.architecture) + " (" +
                            std::to_string(hits) + " of " + std::to_string(file.tensors().size()) +
                            " tensors match its key patterns, e.g. '" + example +
                            "'); lora-verify checks FLUX LoRAs (FLUX.1, Chroma, Flex.1, FLUX.2) only");
  }
  return {};
}

Error no_lora_tensors_error(const st::SafetensorsFile& file, const LoraModel& model,
                             const std::vector<const TensorView*>& unknown) {
  if (!model.passthrough.empty() && unknown.empty())
    return make_error(ErrorCode::kBadInput, file.path() + ": no transformer LoRA tensors: all " +
                                                std::to_string(model.passthrough.size()) +
                                                " tensors are text-encoder or norm tensors");
  std::string example = unknown.empty() ? std::string("(no tensors)") : "'" + unknown.front()->name + "'";
  return make_error(ErrorCode::kBadInput, file.path() + ": not a FLUX LoRA: none of its " +
                                              std::to_string(file.tensors().size()) +
                                              " tensors names a FLUX module in a known LoRA dialect, e.g. " + example);
}

void report_unknown(const std::vector<const TensorView*>& unknown, bool with_shape, std::vector<Finding>& findings) {
  for (const TensorView* t : unknown)
    findings.push_back({"lora.tensor.unknown", Severity::kWarning, t->name,
                        "not used: the name matches no LoRA dialect of FLUX.1" +
                            (with_shape ? " (shape " + st::shape_string(t->shape) + ")" : std::string())});
}

// ---- phase 3: family and layout, from the options or detected from names, widths and blocks ----

Status resolve_layout(const st::SafetensorsFile& file, const Keyed& keyed, const LoadOptions& options, LoraModel& model) {
  model.layout = options.layout.value_or(flux::Layout::flux1_dev());
  if (options.layout) return {};
  auto recorded = file.metadata().find("lora_verify.model");
  LV_TRY_ASSIGN(det, detect_family(keyed, file.path(), options.family,
                                   recorded == file.metadata().end() ? std::string() : recorded->second));
  model.layout = det.layout;
  model.family = std::string(det.family->name);
  model.family_display = std::string(det.family->display);
  model.family_evidence = std::move(det.evidence);
  model.findings.insert(model.findings.end(), det.findings.begin(), det.findings.end());
  return {};
}

// ---- phase 4: tensors grouped by module; the file's dialect ----

struct Group {
  std::string group;
  ParsedKey key;  // of the first tensor seen (naming, module, dialect, split index)
  std::map<Role, const TensorView*> tensors;
  std::map<Role, DialectTag> dialects;  // of each tensor (an .alpha may read as its prefix's base dialect)
  bool duplicated = false;  // two tensors claimed one role: the module is not used
};

std::map<std::string, Group> group_tensors(const Keyed& keyed, std::vector<Finding>& findings) {
  std::map<std::string, Group> groups;
  for (const KeyedTensor& k : keyed) {
    Group& g = groups[k.key.group];
    if (g.tensors.empty()) {
      g.group = k.key.group;
      g.key = k.key;
    }
    auto [it, inserted] = g.tensors.emplace(k.key.role, k.tensor);
    if (inserted) g.dialects.emplace(k.key.role, k.key.dialect);
    if (!inserted) {
      findings.push_back({"lora.key.duplicate", Severity::kError, k.tensor->name,
                          "tensors '" + it->second->name + "' and '" + k.tensor->name + "' are both the " +
                              std::string(role_name(k.key.role)) + " of module " + k.key.group + "; neither is used"});
      g.duplicated = true;
    }
  }
  return groups;
}

// The dialect most tensors are in, with the count of each (sorted by name, as reports list
// them; the first of equal counts wins by name).
void count_dialects(const Keyed& keyed, LoraModel& model) {
  auto by_name = [](const DialectTag& a, const DialectTag& b) { return a.name() < b.name(); };
  std::map<DialectTag, int64_t, decltype(by_name)> dialects(by_name);
  for (const KeyedTensor& k : keyed) dialects[k.key.dialect]++;
  for (auto& [d, n] : dialects) model.dialect_counts.emplace_back(d, n);
  model.dialect = std::max_element(model.dialect_counts.begin(), model.dialect_counts.end(),
                                   [](auto& a, auto& b) { return a.second < b.second; })->first;
  if (dialects.size() > 1) {
    std::string list;
    for (auto& [d, n] : dialects) list += (list.empty() ? "" : ", ") + d.name() + " " + std::to_string(n);
    model.findings.push_back({"lora.dialect.mixed", Severity::kInfo, "", "tensors in several dialects: " + list});
  }
}

// ---- phase 5: each group becomes parts ----

double scalar_value(const TensorView& t, bool& ok) {
  ok = t.numel == 1 && st::dtype_is_decodable(t.dtype);
  if (!ok) return 0;
  double v = 0;
  st::decode_to_double(t.dtype, t.data, 1, &v);
  return v;
}

bool is_matrix(const TensorView* t) { return t && t->shape.size() == 2; }

std::string dims(int64_t rows, int64_t cols) { return std::to_string(rows) + "x" + std::to_string(cols); }

// Reads one module's tensors into parts. Each step returns false when the module cannot be
// used; it has then said why in a finding on every tensor of the module.
class GroupReader {
 public:
  GroupReader(const std::string& name, const Group& g, const PeftConfig& peft, LoraModel& model)
      : name_(name), g_(g), peft_(peft), model_(model) {}

  void read() {
    if (!usable() || !read_alpha() || !read_magnitude()) return;
    if (!read_low_rank() || !read_dense() || !read_lokr() || !read_loha() || !read_bias()) return;
    finish();
  }

 private:
  const std::string& name_;
  const Group& g_;
  const PeftConfig& peft_;
  LoraModel& model_;
  Placement at_;
  int64_t rows_ = 0;  // rows of the target this module's delta covers
  Part base_;
  const TensorView* alpha_t_ = nullptr;
  double alpha_ = 0;
  std::vector<Part> made_;

  const TensorView* get(Role r) const {
    auto it = g_.tensors.find(r);
    return it == g_.tensors.end() ? nullptr : it->second;
  }
  bool unused(const std::string& id, Severity sev, const std::string& why) {
    for (auto& [role, t] : g_.tensors) model_.findings.push_back({id, sev, t->name, why});
    return false;
  }
  bool shape_error(const std::string& why) {
    return unused("lora.shape.mismatch", Severity::kError, "not used: module " + name_ + " on " + at_.target + ": " + why);
  }
  std::string need() const { return dims(rows_, at_.cols); }

  bool usable();
  bool read_alpha();
  double scale_for(int64_t rank) const;
  bool read_magnitude();
  bool read_low_rank();
  bool read_dense();
  bool read_lokr();
  bool read_loha();
  bool read_bias();
  void finish();
};

// Not duplicated, decodable, and placed on rows of a target of the layout.
bool GroupReader::usable() {
  if (g_.duplicated) return unused("lora.tensor.unused", Severity::kError, "not used: module " + name_ + " has duplicate tensors");
  for (auto& [role, t] : g_.tensors)
    if (role != Role::kAlpha && !st::dtype_is_decodable(t->dtype))
      return unused("lora.dtype.unsupported", Severity::kError,
                    "not used: module " + name_ + ": tensor '" + t->name + "' is " + std::string(st::dtype_name(t->dtype)) +
                        "; LoRA factors must be F32, F64, F16, BF16 or F8");
  auto placement = place(model_.layout, g_.key);
  if (!placement)
    return unused("lora.module.unknown", Severity::kWarning,
                  "not used: module '" + g_.key.module + "' has no target in " +
                      (model_.family_display.empty() ? std::string("this layout") : model_.family_display));
  at_ = *placement;
  rows_ = at_.row_end - at_.row_begin;
  base_.target = at_.target;
  base_.target_rows = at_.rows;
  base_.target_cols = at_.cols;
  base_.row_begin = at_.row_begin;
  base_.row_end = at_.row_end;
  base_.swap_halves = at_.swap;
  base_.source_module = name_;
  return true;
}

bool GroupReader::read_alpha() {
  alpha_t_ = get(Role::kAlpha);
  if (!alpha_t_) return true;
  bool ok = false;
  alpha_ = scalar_value(*alpha_t_, ok);
  if (!ok)
    return unused("lora.alpha.invalid", Severity::kError,
                  "not used: alpha of module " + name_ + " must be one float element, has " +
                      std::to_string(alpha_t_->numel) + " of " + std::string(st::dtype_name(alpha_t_->dtype)));
  if (!std::isfinite(alpha_))
    return unused("lora.alpha.nonfinite", Severity::kError, "not used: alpha of module " + name_ + " is " + std::to_string(alpha_));
  if (alpha_ <= 0)
    model_.findings.push_back({"lora.alpha.nonpositive", Severity::kWarning, alpha_t_->name,
                               "alpha " + std::to_string(alpha_) + " is not positive"});
  base_.scale_roundoff = st::dtype_unit_roundoff(alpha_t_->dtype);
  return true;
}

// The weight-delta scale of factors of `rank`: alpha/rank from an .alpha tensor, else from
// PEFT metadata (diffusers names), else 1 (docs/formats.md#scale-rules).
double GroupReader::scale_for(int64_t rank) const {
  if (alpha_t_) return rank > 0 ? alpha_ / static_cast<double>(rank) : 0.0;
  if (peft_.present && g_.key.naming == Naming::kDiffusers) {
    double r = peft_.r, a = peft_.alpha;
    if (const double* v = match_pattern(peft_.rank_pattern, g_.key.module)) r = *v;
    if (const double* v = match_pattern(peft_.alpha_pattern, g_.key.module)) a = *v;
    if (!(r > 0)) return 1.0;
    return peft_.rslora ? a / std::sqrt(r) : a / r;
  }
  return 1.0;
}

bool GroupReader::read_magnitude() {
  if (get(Role::kMagnitude) && get(Role::kDoraScale))
    return unused("lora.key.duplicate", Severity::kError, "not used: module " + name_ + " has both lora_magnitude_vector and dora_scale");
  const TensorView* mag = get(Role::kMagnitude) ? get(Role::kMagnitude) : get(Role::kDoraScale);
  if (!mag) return true;
  const auto& s = mag->shape;
  const uint64_t rows = static_cast<uint64_t>(rows_), cols = static_cast<uint64_t>(at_.cols);
  const bool row_vec = (s.size() == 1 && s[0] == rows) || (s.size() == 2 && s[0] == rows && s[1] == 1);
  const bool col_vec = s.size() == 2 && s[0] == 1 && s[1] == cols && get(Role::kDoraScale);
  if ((!row_vec && !col_vec) || !st::dtype_is_decodable(mag->dtype))
    return shape_error("DoRA magnitude " + st::shape_string(s) + " of " + std::string(st::dtype_name(mag->dtype)) +
                       " must be a float [" + std::to_string(rows) + "] or [" + std::to_string(rows) +
                       ", 1] (per row), or a dora_scale [1, " + std::to_string(cols) + "] (per column)");
  base_.magnitude = mag;
  base_.magnitude_per_row = row_vec;
  return true;
}

bool GroupReader::read_low_rank() {
  const TensorView* down = get(Role::kDown);
  const TensorView* up = get(Role::kUp);
  if (!down && !up) return true;
  if (!down || !up)
    return unused("lora.factor.missing", Severity::kError,
                  std::string("not used: module ") + name_ + " has a " + (down ? "down" : "up") + " matrix but no " +
                      (down ? "up" : "down") + " matrix");
  if (!is_matrix(down) || !is_matrix(up))
    return shape_error("down " + st::shape_string(down->shape) + " and up " + st::shape_string(up->shape) + " must both be 2-D");
  if (up->shape[1] != down->shape[0])
    return unused("lora.rank.mismatch", Severity::kError,
                  "not used: module " + name_ + ": up " + st::shape_string(up->shape) + " has rank " +
                      std::to_string(up->shape[1]) + " but down " + st::shape_string(down->shape) + " has rank " +
                      std::to_string(down->shape[0]));
  if (down->shape[1] != static_cast<uint64_t>(at_.cols) || up->shape[0] != static_cast<uint64_t>(rows_))
    return shape_error("delta is " + std::to_string(up->shape[0]) + "x" + std::to_string(down->shape[1]) + ", rows " +
                       std::to_string(at_.row_begin) + ".." + std::to_string(at_.row_end) + " of " + dims(at_.rows, at_.cols) +
                       " need " + need());
  Part p = base_;
  p.form = PartForm::kLowRank;
  p.down = down;
  p.up = up;
  p.scale = scale_for(static_cast<int64_t>(down->shape[0]));
  made_.push_back(p);
  return true;
}

bool GroupReader::read_dense() {
  const TensorView* diff = get(Role::kDiff);
  if (!diff) return true;
  if (!is_matrix(diff) || diff->shape[0] != static_cast<uint64_t>(rows_) || diff->shape[1] != static_cast<uint64_t>(at_.cols))
    return shape_error("diff " + st::shape_string(diff->shape) + " must be [" + std::to_string(rows_) + ", " +
                       std::to_string(at_.cols) + "] (never reshaped)");
  Part p = base_;
  p.form = PartForm::kDense;
  p.diff = diff;
  made_.push_back(p);
  return true;
}

// One LoKr factor: a full matrix, or a product a·b with matching inner sizes.
bool lokr_factor_ok(const TensorView* full, const TensorView* a, const TensorView* b) {
  return (full && !a && !b && is_matrix(full)) || (!full && is_matrix(a) && is_matrix(b) && a->shape[1] == b->shape[0]);
}

bool GroupReader::read_lokr() {
  if (!get(Role::kLokrW1) && !get(Role::kLokrW1A) && !get(Role::kLokrW2) && !get(Role::kLokrW2A)) return true;
  Part p = base_;
  p.form = PartForm::kLoKr;
  p.w1 = get(Role::kLokrW1);
  p.w1_a = get(Role::kLokrW1A);
  p.w1_b = get(Role::kLokrW1B);
  p.w2 = get(Role::kLokrW2);
  p.w2_a = get(Role::kLokrW2A);
  p.w2_b = get(Role::kLokrW2B);
  if (get(Role::kLokrT2))
    return unused("lora.lokr.tucker", Severity::kError, "not used: module " + name_ + ": LoKr with a Tucker core (lokr_t2) is not supported");
  if (!lokr_factor_ok(p.w1, p.w1_a, p.w1_b) || !lokr_factor_ok(p.w2, p.w2_a, p.w2_b))
    return shape_error("LoKr factors must be w1 or w1_a·w1_b and w2 or w2_a·w2_b, all 2-D with matching inner sizes");
  const uint64_t r1 = p.w1 ? p.w1->shape[0] : p.w1_a->shape[0], c1 = p.w1 ? p.w1->shape[1] : p.w1_b->shape[1];
  const uint64_t r2 = p.w2 ? p.w2->shape[0] : p.w2_a->shape[0], c2 = p.w2 ? p.w2->shape[1] : p.w2_b->shape[1];
  const unsigned __int128 rows = static_cast<unsigned __int128>(r1) * r2, cols = static_cast<unsigned __int128>(c1) * c2;
  if (rows != static_cast<unsigned __int128>(rows_) || cols != static_cast<unsigned __int128>(at_.cols))
    return shape_error("kron(w1 [" + std::to_string(r1) + ", " + std::to_string(c1) + "], w2 [" + std::to_string(r2) + ", " +
                       std::to_string(c2) + "]) is " + std::to_string(static_cast<uint64_t>(r1 * r2)) + "x" +
                       std::to_string(static_cast<uint64_t>(c1 * c2)) + " but the target rows need " + need() +
                       " (never reshaped)");
  const int64_t r = p.w1_b ? static_cast<int64_t>(p.w1_b->shape[0]) : (p.w2_b ? static_cast<int64_t>(p.w2_b->shape[0]) : 0);
  p.scale = (alpha_t_ && r > 0) ? alpha_ / static_cast<double>(r) : 1.0;
  made_.push_back(p);
  return true;
}

bool GroupReader::read_loha() {
  if (!get(Role::kHadaW1A) && !get(Role::kHadaW1B) && !get(Role::kHadaW2A) && !get(Role::kHadaW2B)) return true;
  Part p = base_;
  p.form = PartForm::kLoHa;
  p.hada_w1_a = get(Role::kHadaW1A);
  p.hada_w1_b = get(Role::kHadaW1B);
  p.hada_w2_a = get(Role::kHadaW2A);
  p.hada_w2_b = get(Role::kHadaW2B);
  const auto rows = static_cast<uint64_t>(rows_), cols = static_cast<uint64_t>(at_.cols);
  auto pair_ok = [&](const TensorView* a, const TensorView* b) {
    return is_matrix(a) && is_matrix(b) && a->shape[1] == b->shape[0] && a->shape[0] == rows && b->shape[1] == cols;
  };
  if (!pair_ok(p.hada_w1_a, p.hada_w1_b) || !pair_ok(p.hada_w2_a, p.hada_w2_b))
    return shape_error("LoHa factors must be w1_a [" + std::to_string(rows_) + ", r] · w1_b [r, " + std::to_string(at_.cols) +
                       "] and the same for w2");
  p.scale = alpha_t_ ? scale_for(static_cast<int64_t>(p.hada_w1_b->shape[0])) : 1.0;
  made_.push_back(p);
  return true;
}

// Bias delta: lora_B.bias is scaled like the weight delta (PEFT), diff_b is not.
bool GroupReader::read_bias() {
  const TensorView* bias = get(Role::kBias);
  const TensorView* diff_b = get(Role::kDiffB);
  if (bias && diff_b) return unused("lora.key.duplicate", Severity::kError, "not used: module " + name_ + " has both lora_B.bias and diff_b");
  const TensorView* b = bias ? bias : diff_b;
  if (!b) return true;
  if (!model_.layout.biases) {
    model_.findings.push_back({"lora.bias.no_target", Severity::kError, b->name,
                               "not used: bias delta " + st::shape_string(b->shape) + " on " + at_.target + ": " +
                                   (model_.family_display.empty() ? std::string("this model") : model_.family_display) +
                                   " has no biases, so it has no target"});
    return true;
  }
  if (b->numel != static_cast<uint64_t>(rows_) || b->shape.size() != 1)
    return shape_error("bias delta " + st::shape_string(b->shape) + " must be [" + std::to_string(rows_) + "]");
  if (bias && !get(Role::kDown))
    return unused("lora.factor.missing", Severity::kError, "not used: module " + name_ + " has lora_B.bias but no lora_A/lora_B");
  if (made_.empty()) {
    Part p = base_;
    p.form = PartForm::kBiasOnly;
    made_.push_back(p);
  }
  made_.front().bias = b;
  made_.front().bias_scale = bias ? made_.front().scale : 1.0;
  return true;
}

void GroupReader::finish() {
  if (made_.empty()) {
    unused("lora.tensor.unused", Severity::kWarning, "not used: module " + name_ + " has no weight or bias delta");
    return;
  }
  if (base_.magnitude)
    model_.findings.push_back({"lora.dora", Severity::kInfo, base_.magnitude->name,
                               std::string("DoRA magnitude per ") + (base_.magnitude_per_row ? "output row" : "input column") +
                                   " on " + at_.target + ": the effective weight needs the base model's weights; "
                                   "the factors and the magnitude are checked, not the merged weight"});
  for (auto& p : made_) {
    for (auto& [role, t] : g_.tensors) p.source_tensors.push_back({t->name, role, g_.dialects.at(role), t});
    model_.parts.push_back(std::move(p));
  }
}

// ---- phase 6: overlapping parts ----

// Overlapping parts on one target are legal (they add) but usually a duplicate. A sweep over
// row starts finds them in O(n log n), whatever a hostile file holds.
void report_overlaps(LoraModel& model) {
  std::map<std::string, std::vector<const Part*>> by_target;
  for (const auto& p : model.parts) by_target[p.target].push_back(&p);
  for (auto& [target, parts] : by_target) {
    std::sort(parts.begin(), parts.end(), [](const Part* a, const Part* b) { return a->row_begin < b->row_begin; });
    const Part* widest = nullptr;
    for (const Part* p : parts) {
      if (widest && p->row_begin < widest->row_end && p->source_module != widest->source_module)
        model.findings.push_back({"lora.module.overlap", Severity::kWarning, target,
                                  "modules " + widest->source_module + " and " + p->source_module + " both change rows of " +
                                      target + "; their deltas add"});
      if (!widest || p->row_end > widest->row_end) widest = p;
    }
  }
}

}  // namespace

std::vector<std::string> Part::source_names() const {
  std::vector<std::string> out;
  out.reserve(source_tensors.size());
  for (const Source& s : source_tensors) out.push_back(s.name);
  return out;
}

Result<LoraModel> load_lora(std::shared_ptr<const st::SafetensorsFile> file, const LoadOptions& options) {
  LoraModel model;
  model.file = file;
  std::vector<const TensorView*> unknown;
  const Keyed keyed = classify_tensors(*file, model, unknown);
  LV_TRY(refuse_other_architectures(*file, keyed, unknown));
  if (keyed.empty() && options.allow_empty) {
    model.layout = options.layout.value_or(flux::Layout::flux1_dev());
    report_unknown(unknown, false, model.findings);
    return model;
  }
  if (keyed.empty()) return no_lora_tensors_error(*file, model, unknown);
  LV_TRY(resolve_layout(*file, keyed, options, model));
  const auto groups = group_tensors(keyed, model.findings);
  count_dialects(keyed, model);
  const PeftConfig peft = read_peft_config(*file, model.findings);
  for (const auto& [name, g] : groups) GroupReader(name, g, peft, model).read();
  report_unknown(unknown, true, model.findings);
  report_overlaps(model);
  return model;
}

}  // namespace lv
