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

// ---- grouping ----

struct Group {
  std::string group;
  ParsedKey key;  // of the first tensor seen (naming, module, dialect, split index)
  std::map<Role, const TensorView*> tensors;
  bool duplicated = false;  // two tensors claimed one role: the module is not used
};

double scalar_value(const TensorView& t, bool& ok) {
  ok = t.numel == 1 && st::dtype_is_decodable(t.dtype);
  if (!ok) return 0;
  double v = 0;
  st::decode_to_double(t.dtype, t.data, 1, &v);
  return v;
}

bool is_matrix(const TensorView* t) { return t && t->shape.size() == 2; }

}  // namespace

Result<LoraModel> load_lora(std::shared_ptr<const st::SafetensorsFile> file, const LoadOptions& options) {
  LoraModel model;
  model.file = file;
  const std::string& path = file->path();
  std::vector<Finding>& findings = model.findings;

  // 1. Classify every tensor by name.
  std::vector<std::pair<const TensorView*, ParsedKey>> keyed;
  std::vector<const TensorView*> unknown;
  for (const TensorView& t : file->tensors()) {
    if (auto te = text_encoder_label(t.name)) {
      model.passthrough.push_back({t.name, "text encoder (" + *te + ")"});
      continue;
    }
    if (auto k = parse_key(t.name)) {
      keyed.emplace_back(&t, std::move(*k));
      continue;
    }
    // Absolute RMSNorm scales: set-values, not deltas (docs/formats.md#norm-scales).
    if (t.name.size() > 6 && (contains(t.name, "_norm.scale") || contains(t.name, ".norm_q.weight") ||
                              contains(t.name, ".norm_k.weight") || contains(t.name, ".norm_added_q.weight") ||
                              contains(t.name, ".norm_added_k.weight"))) {
      model.passthrough.push_back({t.name, "absolute norm scale (a set-value, not a delta)"});
      continue;
    }
    unknown.push_back(&t);
  }

  // 2. Architecture: refuse files that are clearly another model.
  bool any_flux_specific = std::any_of(keyed.begin(), keyed.end(), [](auto& p) { return flux_specific(p.second); });
  if (!any_flux_specific) {
    for (const auto& sig : kOtherArchitectures) {
      int64_t hits = 0;
      std::string example;
      for (const TensorView& t : file->tensors()) {
        for (std::string_view p : sig.patterns)
          if (!p.empty() && contains(t.name, p)) {
            if (hits++ == 0) example = t.name;
            break;
          }
      }
      // Diffusers block names with kohya suffixes and no FLUX.1-only module: Qwen-Image.
      if (sig.architecture == "Qwen-Image")
        for (auto& [t, k] : keyed)
          if (k.dialect.id == Dialect::kDiffusersKohyaSuffix) {
            if (hits++ == 0) example = t->name;
          }
      if (hits > 0)
        return make_error(ErrorCode::kBadInput,
                          path + ": not a FLUX LoRA: it looks like " + std::string(sig.architecture) + " (" +
                              std::to_string(hits) + " of " + std::to_string(file->tensors().size()) +
                              " tensors match its key patterns, e.g. '" + example +
                              "'); lora-verify checks FLUX LoRAs (FLUX.1, Chroma, Flex.1, FLUX.2) only");
    }
  }
  if (keyed.empty() && options.allow_empty) {
    model.layout = options.layout.value_or(flux::Layout::flux1_dev());
    model.dialect = {};
    for (const TensorView* t : unknown)
      findings.push_back({"lora.tensor.unknown", Severity::kWarning, t->name, "not used: the name matches no LoRA dialect of FLUX.1"});
    return model;
  }
  if (keyed.empty()) {
    if (!model.passthrough.empty() && unknown.empty())
      return make_error(ErrorCode::kBadInput, path + ": no transformer LoRA tensors: all " +
                                                  std::to_string(model.passthrough.size()) +
                                                  " tensors are text-encoder or norm tensors");
    std::string example = unknown.empty() ? std::string("(no tensors)") : "'" + unknown.front()->name + "'";
    return make_error(ErrorCode::kBadInput, path + ": not a FLUX LoRA: none of its " +
                                                std::to_string(file->tensors().size()) +
                                                " tensors names a FLUX module in a known LoRA dialect, e.g. " +
                                                example);
  }

  // 3. Family and layout: from the options, or detected from names, widths and block indices.
  flux::Layout layout = options.layout.value_or(flux::Layout::flux1_dev());
  if (!options.layout) {
    std::vector<KeyedTensor> kts;
    kts.reserve(keyed.size());
    for (auto& [t, k] : keyed) kts.push_back({t, k});
    auto recorded = file->metadata().find("lora_verify.model");
    LV_TRY_ASSIGN(det, detect_family(kts, path, options.family,
                                     recorded == file->metadata().end() ? std::string() : recorded->second));
    layout = det.layout;
    model.family = std::string(det.family->name);
    model.family_display = std::string(det.family->display);
    model.family_evidence = std::move(det.evidence);
    findings.insert(findings.end(), det.findings.begin(), det.findings.end());
  }
  model.layout = layout;

  // 4. Group tensors by module.
  std::map<std::string, Group> groups;
  // Sorted by name, as reports list them (and the first of equal counts wins by name).
  auto by_name = [](const DialectTag& a, const DialectTag& b) { return a.name() < b.name(); };
  std::map<DialectTag, int64_t, decltype(by_name)> dialects(by_name);
  for (auto& [t, k] : keyed) {
    Group& g = groups[k.group];
    if (g.tensors.empty()) {
      g.group = k.group;
      g.key = k;
    }
    auto [it, inserted] = g.tensors.emplace(k.role, t);
    if (!inserted) {
      findings.push_back({"lora.key.duplicate", Severity::kError, t->name,
                          "tensors '" + it->second->name + "' and '" + t->name + "' are both the " +
                              std::string(role_name(k.role)) + " of module " + k.group + "; neither is used"});
      g.duplicated = true;
    }
    dialects[k.dialect]++;
  }
  for (auto& [d, n] : dialects) model.dialect_counts.emplace_back(d, n);
  model.dialect = std::max_element(model.dialect_counts.begin(), model.dialect_counts.end(),
                                   [](auto& a, auto& b) { return a.second < b.second; })->first;
  if (dialects.size() > 1) {
    std::string list;
    for (auto& [d, n] : dialects) list += (list.empty() ? "" : ", ") + d.name() + " " + std::to_string(n);
    findings.push_back({"lora.dialect.mixed", Severity::kInfo, "", "tensors in several dialects: " + list});
  }

  PeftConfig peft = read_peft_config(*file, findings);

  // 5. Each group becomes parts.
  for (auto& entry : groups) {
    // Plain references: clang 14 cannot capture structured bindings in lambdas.
    const std::string& name = entry.first;
    Group& g = entry.second;
    auto unused = [&](const std::string& id, Severity sev, const std::string& why) {
      for (auto& [role, t] : g.tensors) findings.push_back({id, sev, t->name, why});
    };
    if (g.duplicated) {
      unused("lora.tensor.unused", Severity::kError, "not used: module " + name + " has duplicate tensors");
      continue;
    }
    const TensorView* bad_dtype = nullptr;
    for (auto& [role, t] : g.tensors)
      if (role != Role::kAlpha && !st::dtype_is_decodable(t->dtype)) bad_dtype = t;
    if (bad_dtype) {
      unused("lora.dtype.unsupported", Severity::kError,
             "not used: module " + name + ": tensor '" + bad_dtype->name + "' is " +
                 std::string(st::dtype_name(bad_dtype->dtype)) + "; LoRA factors must be F32, F64, F16, BF16 or F8");
      continue;
    }
    auto placement = place(layout, g.key);
    if (!placement) {
      unused("lora.module.unknown", Severity::kWarning,
             "not used: module '" + g.key.module + "' has no target in " +
                 (model.family_display.empty() ? std::string("this layout") : model.family_display));
      continue;
    }
    auto get = [&](Role r) -> const TensorView* {
      auto it = g.tensors.find(r);
      return it == g.tensors.end() ? nullptr : it->second;
    };
    const int64_t part_rows = placement->row_end - placement->row_begin;
    Part base;
    base.target = placement->target;
    base.target_rows = placement->rows;
    base.target_cols = placement->cols;
    base.row_begin = placement->row_begin;
    base.row_end = placement->row_end;
    base.swap_halves = placement->swap;
    base.source_module = name;

    // Alpha.
    const TensorView* alpha_t = get(Role::kAlpha);
    double alpha = 0;
    if (alpha_t) {
      bool ok = false;
      alpha = scalar_value(*alpha_t, ok);
      if (!ok) {
        unused("lora.alpha.invalid", Severity::kError,
               "not used: alpha of module " + name + " must be one float element, has " + std::to_string(alpha_t->numel) +
                   " of " + std::string(st::dtype_name(alpha_t->dtype)));
        continue;
      }
      if (!std::isfinite(alpha)) {
        unused("lora.alpha.nonfinite", Severity::kError, "not used: alpha of module " + name + " is " + std::to_string(alpha));
        continue;
      }
      if (alpha <= 0)
        findings.push_back({"lora.alpha.nonpositive", Severity::kWarning, alpha_t->name,
                            "alpha " + std::to_string(alpha) + " is not positive"});
      base.scale_roundoff = st::dtype_unit_roundoff(alpha_t->dtype);
    }
    auto scale_for = [&](int64_t rank) -> double {
      if (alpha_t) return rank > 0 ? alpha / static_cast<double>(rank) : 0.0;
      if (peft.present && g.key.naming == Naming::kDiffusers) {
        double r = peft.r, a = peft.alpha;
        if (const double* v = match_pattern(peft.rank_pattern, g.key.module)) r = *v;
        if (const double* v = match_pattern(peft.alpha_pattern, g.key.module)) a = *v;
        if (!(r > 0)) return 1.0;
        return peft.rslora ? a / std::sqrt(r) : a / r;
      }
      return 1.0;
    };
    auto shape_error = [&](const std::string& why) {
      unused("lora.shape.mismatch", Severity::kError, "not used: module " + name + " on " + placement->target + ": " + why);
    };

    if (get(Role::kMagnitude) && get(Role::kDoraScale)) {
      unused("lora.key.duplicate", Severity::kError,
             "not used: module " + name + " has both lora_magnitude_vector and dora_scale");
      continue;
    }
    if (const TensorView* mag = get(Role::kMagnitude) ? get(Role::kMagnitude) : get(Role::kDoraScale)) {
      const auto& s = mag->shape;
      const uint64_t rows = static_cast<uint64_t>(part_rows), cols = static_cast<uint64_t>(placement->cols);
      const bool row_vec = (s.size() == 1 && s[0] == rows) || (s.size() == 2 && s[0] == rows && s[1] == 1);
      const bool col_vec = s.size() == 2 && s[0] == 1 && s[1] == cols && get(Role::kDoraScale);
      if ((!row_vec && !col_vec) || !st::dtype_is_decodable(mag->dtype)) {
        shape_error("DoRA magnitude " + st::shape_string(s) + " of " + std::string(st::dtype_name(mag->dtype)) +
                    " must be a float [" + std::to_string(rows) + "] or [" + std::to_string(rows) + ", 1] (per row), or a dora_scale [1, " +
                    std::to_string(cols) + "] (per column)");
        continue;
      }
      base.magnitude = mag;
      base.magnitude_per_row = row_vec;
    }

    std::vector<Part> made;
    std::string rejected;
    const TensorView* down = get(Role::kDown);
    const TensorView* up = get(Role::kUp);
    if (down || up) {
      if (!down || !up) {
        unused("lora.factor.missing", Severity::kError,
               std::string("not used: module ") + name + " has a " + (down ? "down" : "up") + " matrix but no " +
                   (down ? "up" : "down") + " matrix");
        continue;
      }
      if (!is_matrix(down) || !is_matrix(up)) {
        shape_error("down " + st::shape_string(down->shape) + " and up " + st::shape_string(up->shape) + " must both be 2-D");
        continue;
      }
      if (up->shape[1] != down->shape[0]) {
        unused("lora.rank.mismatch", Severity::kError,
               "not used: module " + name + ": up " + st::shape_string(up->shape) + " has rank " + std::to_string(up->shape[1]) +
                   " but down " + st::shape_string(down->shape) + " has rank " + std::to_string(down->shape[0]));
        continue;
      }
      if (down->shape[1] != static_cast<uint64_t>(placement->cols) || up->shape[0] != static_cast<uint64_t>(part_rows)) {
        shape_error("delta is " + std::to_string(up->shape[0]) + "x" + std::to_string(down->shape[1]) + ", rows " +
                    std::to_string(placement->row_begin) + ".." + std::to_string(placement->row_end) + " of " +
                    std::to_string(placement->rows) + "x" + std::to_string(placement->cols) + " need " +
                    std::to_string(part_rows) + "x" + std::to_string(placement->cols));
        continue;
      }
      Part p = base;
      p.form = PartForm::kLowRank;
      p.down = down;
      p.up = up;
      p.scale = scale_for(static_cast<int64_t>(down->shape[0]));
      made.push_back(p);
    }
    if (const TensorView* diff = get(Role::kDiff)) {
      if (!is_matrix(diff) || diff->shape[0] != static_cast<uint64_t>(part_rows) ||
          diff->shape[1] != static_cast<uint64_t>(placement->cols)) {
        shape_error("diff " + st::shape_string(diff->shape) + " must be [" + std::to_string(part_rows) + ", " +
                    std::to_string(placement->cols) + "] (never reshaped)");
        continue;
      }
      Part p = base;
      p.form = PartForm::kDense;
      p.diff = diff;
      made.push_back(p);
    }
    if (get(Role::kLokrW1) || get(Role::kLokrW1A) || get(Role::kLokrW2) || get(Role::kLokrW2A)) {
      Part p = base;
      p.form = PartForm::kLoKr;
      p.w1 = get(Role::kLokrW1);
      p.w1_a = get(Role::kLokrW1A);
      p.w1_b = get(Role::kLokrW1B);
      p.w2 = get(Role::kLokrW2);
      p.w2_a = get(Role::kLokrW2A);
      p.w2_b = get(Role::kLokrW2B);
      if (get(Role::kLokrT2)) {
        unused("lora.lokr.tucker", Severity::kError, "not used: module " + name + ": LoKr with a Tucker core (lokr_t2) is not supported");
        continue;
      }
      bool w1ok = (p.w1 && !p.w1_a && !p.w1_b && is_matrix(p.w1)) ||
                  (!p.w1 && is_matrix(p.w1_a) && is_matrix(p.w1_b) && p.w1_a->shape[1] == p.w1_b->shape[0]);
      bool w2ok = (p.w2 && !p.w2_a && !p.w2_b && is_matrix(p.w2)) ||
                  (!p.w2 && is_matrix(p.w2_a) && is_matrix(p.w2_b) && p.w2_a->shape[1] == p.w2_b->shape[0]);
      if (!w1ok || !w2ok) {
        shape_error("LoKr factors must be w1 or w1_a·w1_b and w2 or w2_a·w2_b, all 2-D with matching inner sizes");
        continue;
      }
      uint64_t r1 = p.w1 ? p.w1->shape[0] : p.w1_a->shape[0], c1 = p.w1 ? p.w1->shape[1] : p.w1_b->shape[1];
      uint64_t r2 = p.w2 ? p.w2->shape[0] : p.w2_a->shape[0], c2 = p.w2 ? p.w2->shape[1] : p.w2_b->shape[1];
      unsigned __int128 rows = static_cast<unsigned __int128>(r1) * r2, cols = static_cast<unsigned __int128>(c1) * c2;
      if (rows != static_cast<unsigned __int128>(part_rows) || cols != static_cast<unsigned __int128>(placement->cols)) {
        shape_error("kron(w1 [" + std::to_string(r1) + ", " + std::to_string(c1) + "], w2 [" + std::to_string(r2) + ", " +
                    std::to_string(c2) + "]) is " + std::to_string(static_cast<uint64_t>(r1 * r2)) + "x" +
                    std::to_string(static_cast<uint64_t>(c1 * c2)) + " but the target rows need " +
                    std::to_string(part_rows) + "x" + std::to_string(placement->cols) + " (never reshaped)");
        continue;
      }
      int64_t r = p.w1_b ? static_cast<int64_t>(p.w1_b->shape[0]) : (p.w2_b ? static_cast<int64_t>(p.w2_b->shape[0]) : 0);
      p.scale = (alpha_t && r > 0) ? alpha / static_cast<double>(r) : 1.0;
      made.push_back(p);
    }
    if (get(Role::kHadaW1A) || get(Role::kHadaW1B) || get(Role::kHadaW2A) || get(Role::kHadaW2B)) {
      Part p = base;
      p.form = PartForm::kLoHa;
      p.hada_w1_a = get(Role::kHadaW1A);
      p.hada_w1_b = get(Role::kHadaW1B);
      p.hada_w2_a = get(Role::kHadaW2A);
      p.hada_w2_b = get(Role::kHadaW2B);
      bool ok = is_matrix(p.hada_w1_a) && is_matrix(p.hada_w1_b) && is_matrix(p.hada_w2_a) && is_matrix(p.hada_w2_b) &&
                p.hada_w1_a->shape[1] == p.hada_w1_b->shape[0] && p.hada_w2_a->shape[1] == p.hada_w2_b->shape[0] &&
                p.hada_w1_a->shape[0] == static_cast<uint64_t>(part_rows) && p.hada_w2_a->shape[0] == static_cast<uint64_t>(part_rows) &&
                p.hada_w1_b->shape[1] == static_cast<uint64_t>(placement->cols) &&
                p.hada_w2_b->shape[1] == static_cast<uint64_t>(placement->cols);
      if (!ok) {
        shape_error("LoHa factors must be w1_a [" + std::to_string(part_rows) + ", r] · w1_b [r, " +
                    std::to_string(placement->cols) + "] and the same for w2");
        continue;
      }
      p.scale = alpha_t ? scale_for(static_cast<int64_t>(p.hada_w1_b->shape[0])) : 1.0;
      made.push_back(p);
    }

    // Bias delta: lora_B.bias is scaled like the weight delta (PEFT), diff_b is not.
    const TensorView* bias = get(Role::kBias);
    const TensorView* diff_b = get(Role::kDiffB);
    if (bias && diff_b) {
      unused("lora.key.duplicate", Severity::kError, "not used: module " + name + " has both lora_B.bias and diff_b");
      continue;
    }
    if ((bias || diff_b) && !layout.biases) {
      const TensorView* b = bias ? bias : diff_b;
      findings.push_back({"lora.bias.no_target", Severity::kError, b->name,
                          "not used: bias delta " + st::shape_string(b->shape) + " on " + placement->target + ": " +
                              (model.family_display.empty() ? std::string("this model") : model.family_display) +
                              " has no biases, so it has no target"});
      bias = diff_b = nullptr;
    }
    if (bias || diff_b) {
      const TensorView* b = bias ? bias : diff_b;
      if (b->numel != static_cast<uint64_t>(part_rows) || b->shape.size() != 1) {
        shape_error("bias delta " + st::shape_string(b->shape) + " must be [" + std::to_string(part_rows) + "]");
        continue;
      }
      if (bias && !down) {
        unused("lora.factor.missing", Severity::kError, "not used: module " + name + " has lora_B.bias but no lora_A/lora_B");
        continue;
      }
      if (made.empty()) {
        Part p = base;
        p.form = PartForm::kBiasOnly;
        made.push_back(p);
      }
      made.front().bias = b;
      made.front().bias_scale = bias ? made.front().scale : 1.0;
    }
    if (made.empty()) {
      unused("lora.tensor.unused", Severity::kWarning, "not used: module " + name + " has no weight or bias delta");
      continue;
    }
    if (base.magnitude)
      findings.push_back({"lora.dora", Severity::kInfo, base.magnitude->name,
                          std::string("DoRA magnitude per ") + (base.magnitude_per_row ? "output row" : "input column") +
                              " on " + placement->target + ": the effective weight needs the base model's weights; "
                              "the factors and the magnitude are checked, not the merged weight"});
    for (auto& p : made) {
      for (auto& [role, t] : g.tensors) p.source_tensors.push_back(t->name);
      model.parts.push_back(std::move(p));
    }
  }

  for (const TensorView* t : unknown)
    findings.push_back({"lora.tensor.unknown", Severity::kWarning, t->name,
                        "not used: the name matches no LoRA dialect of FLUX.1 (shape " + st::shape_string(t->shape) + ")"});

  // Overlapping parts on one target are legal (they add) but usually a duplicate. A sweep
  // over row starts finds them in O(n log n), whatever a hostile file holds.
  std::map<std::string, std::vector<const Part*>> by_target;
  for (const auto& p : model.parts) by_target[p.target].push_back(&p);
  for (auto& [target, parts] : by_target) {
    std::sort(parts.begin(), parts.end(), [](const Part* a, const Part* b) { return a->row_begin < b->row_begin; });
    const Part* widest = nullptr;
    for (const Part* p : parts) {
      if (widest && p->row_begin < widest->row_end && p->source_module != widest->source_module) {
        findings.push_back({"lora.module.overlap", Severity::kWarning, target,
                            "modules " + widest->source_module + " and " + p->source_module + " both change rows of " +
                                target + "; their deltas add"});
      }
      if (!widest || p->row_end > widest->row_end) widest = p;
    }
  }
  return model;
}

}  // namespace lv
