// Verdicts of the loader profiles on a canonical model: describe a file as kinds of tensor,
// look each kind up in the loader's rules, and combine.
#include "loaders/verdict.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "flux/layout.h"
#include "lora/keys.h"

namespace lv::loaders {
namespace {

// " FLUX.2" for a file of the second kind, "" for the first.
std::string file_kind_label(const Description& file) {
  const std::string_view label = kFileKinds[file_kind(file.arch)].label;
  return label.empty() ? std::string() : " " + std::string(label);
}

// The loaders' kind of a module, from its role in the module tables.
Kind module_kind(std::string_view target) {
  using R = flux::ModuleRole;
  constexpr std::pair<R, Kind> kKinds[] = {
      {R::kTopLevel, Kind::kTopLevelModule},     {R::kBlock, Kind::kBlockModule},
      {R::kTextMlp, Kind::kTextMlp},             {R::kTimeEmbedder, Kind::kTimeEmbedder},
      {R::kGuidanceEmbedder, Kind::kGuidanceIn}, {R::kSharedModulation, Kind::kSharedModulation},
      {R::kFinalLinear, Kind::kFinalLinear},     {R::kFinalModulation, Kind::kFinalModulation},
  };
  static const flux::Layout any = flux::Layout::any_blocks();
  const auto t = flux::find_target(any, target);
  const R role = t ? t->role : R::kTopLevel;
  for (const auto& [r, k] : kKinds)
    if (r == role) return k;
  return Kind::kTopLevelModule;
}

Kind text_encoder_kind(std::string_view name) {
  if (name.rfind("text_encoder.", 0) == 0) return Kind::kTextEncoderClipDiffusers;
  for (std::string_view p : {"lora_te1_", "lora_te_"})
    if (name.rfind(p, 0) == 0) return Kind::kTextEncoderClip;
  for (std::string_view p : {"lora_te2_", "text_encoder_2."})
    if (name.rfind(p, 0) == 0) return Kind::kTextEncoderT5Te2;
  if (name.rfind("lora_te3_", 0) == 0) return Kind::kTextEncoderT5Te3;
  return Kind::kTextEncoderOther;
}

std::optional<Kind> role_kind(Role r, bool per_row_magnitude) {
  switch (r) {
    case Role::kDown:
    case Role::kUp: return std::nullopt;
    case Role::kAlpha: return Kind::kAlphaTensor;
    case Role::kBias:
    case Role::kDiffB: return Kind::kBiasDelta;
    case Role::kDiff: return Kind::kDiff;
    case Role::kLokrW1:
    case Role::kLokrW1A:
    case Role::kLokrW1B:
    case Role::kLokrW2:
    case Role::kLokrW2A:
    case Role::kLokrW2B:
    case Role::kLokrT2: return Kind::kLokr;
    case Role::kHadaW1A:
    case Role::kHadaW1B:
    case Role::kHadaW2A:
    case Role::kHadaW2B: return Kind::kLoha;
    case Role::kDoraScale:
    case Role::kMagnitude: return per_row_magnitude ? Kind::kDoraRow : Kind::kDoraColumn;
  }
  return std::nullopt;
}

Item::Piece role_piece(Role r) {
  if (r == Role::kBias || r == Role::kDiffB) return Item::Piece::kBias;
  if (r == Role::kMagnitude || r == Role::kDoraScale) return Item::Piece::kMagnitude;
  return Item::Piece::kWeights;
}

// A bias delta of a row range of its target, or stored with its halves swapped.
bool bias_on_part(const Part& p) {
  return p.swap_halves || p.row_begin != 0 || p.row_end != p.target_rows;
}

// The single-block proj_out parts (linear2) diffusers applies with the top-level proj_out's
// alpha. diffusers' default alpha is the first module's (its Counter of alpha tensors counts
// each tensor once); every other alpha goes into PEFT's alpha_pattern, whose first key that
// matches a module's name as a suffix wins, and "proj_out" sorts before
// "single_transformer_blocks.<i>.proj_out".
std::set<size_t> alpha_pattern_shadowed(const LoraModel& model) {
  std::map<std::string, double> alpha;  // alpha tensor name → value, by name
  std::optional<double> top;
  for (const Part& p : model.parts) {
    if (p.form != PartForm::kLowRank || !p.down || p.down->shape.empty()) continue;
    for (const Part::Source& s : p.source_tensors)
      if (s.role == Role::kAlpha) {
        alpha[s.name] = p.scale * static_cast<double>(p.down->shape[0]);
        if (p.target == "final_layer.linear") top = alpha[s.name];
      }
  }
  std::set<size_t> out;
  if (!top || alpha.empty() || *top == alpha.begin()->second) return out;
  for (size_t i = 0; i < model.parts.size(); ++i) {
    const Part& p = model.parts[i];
    if (p.target.rfind("single_blocks.", 0) != 0 || !p.target.ends_with(".linear2")) continue;
    for (const Part::Source& s : p.source_tensors)
      if (auto it = alpha.find(s.name); it != alpha.end() && it->second != *top) out.insert(i);
  }
  return out;
}

// Fused targets some of whose diffusers parts have no delta in the model: the kinds that
// describe the gap (a single block without proj_mlp, or q/k/v missing).
std::map<std::string, std::vector<Kind>> partial_targets(const LoraModel& model) {
  std::map<std::string, std::vector<const Part*>> by_target;
  for (const Part& p : model.parts) by_target[p.target].push_back(&p);
  std::map<std::string, std::vector<Kind>> out;
  for (const auto& [target, parts] : by_target) {
    auto maps = flux::parts_of_target(model.layout, target);
    if (maps.size() < 2) continue;
    bool attention_missing = false, mlp_missing = false;
    for (const auto& pm : maps) {
      bool covered = std::any_of(parts.begin(), parts.end(),
                                 [&](const Part* p) { return p->row_begin < pm.row_end && pm.row_begin < p->row_end; });
      if (covered) continue;
      (pm.part_index == 3 ? mlp_missing : attention_missing) = true;
    }
    if (attention_missing) out[target].push_back(Kind::kPartialAttention);
    if (mlp_missing) out[target].push_back(Kind::kPartialMlp);
  }
  return out;
}

void add_passthrough(const LoraModel& model, Description& d) {
  for (size_t i = 0; i < model.passthrough.size(); ++i) {
    const PassThrough& pt = model.passthrough[i];
    Kind k = pt.text_encoder ? text_encoder_kind(pt.tensor) : Kind::kNormScale;
    d.items.push_back({pt.tensor, "", {k}, Item::Piece::kPassThrough, i});
  }
}

bool metadata_alpha_used(const LoraModel& model) {
  if (!model.file || !model.file->metadata().count("lora_adapter_metadata")) return false;
  return std::none_of(model.findings.begin(), model.findings.end(),
                      [](const Finding& f) { return f.id == "lora.metadata.invalid"; });
}

int rank_of(Treatment t) {
  switch (t) {
    case Treatment::kApplies: return 0;
    case Treatment::kUnknown: return 1;
    case Treatment::kDropsWithWarning: return 2;
    case Treatment::kDropsSilently: return 3;
    case Treatment::kRejectsFile: return 4;
  }
  return 1;
}

const StyleSupport* support_for(const Profile& p, const Description& file) {
  for (const StyleSupport& s : p.styles[file_kind(file.arch)]) {
    if (!s.condition.empty() &&
        std::find(file.conditions.begin(), file.conditions.end(), s.condition) == file.conditions.end())
      continue;
    for (Dialect d : s.dialects)
      if (d == file.dialect) return &s;
  }
  return nullptr;
}

// The file carries metadata, but no ai-toolkit `software` entry (loaders that detect ai-toolkit
// files by that entry then take the file for something else).
bool foreign_metadata(const std::map<std::string, std::string>& meta) {
  if (meta.empty()) return false;
  auto it = meta.find("software");
  return it == meta.end() || it->second.find("\"ai-toolkit\"") == std::string::npos;
}

const Rule* rule_for(const StyleSupport& s, Kind k) {
  for (const Rule& r : s.rules)
    if (r.kind == k) return &r;
  if (auto parent = parent_kind(k)) return rule_for(s, *parent);
  return nullptr;
}

// Loaders that skip a whole file with too many unread tensors (Forge): the drop becomes a rejection.
void apply_unread_limit(const Profile& p, Verdict& v) {
  if (p.max_unread < 0 || v.outcome != Outcome::kDrops || static_cast<int>(v.dropped.size()) <= p.max_unread) return;
  v.outcome = Outcome::kRejects;
  v.message = std::string(p.unread_message) + "; " + v.message;
}

bool rows_covered(const LoraModel& model, std::string_view target, int64_t begin, int64_t end) {
  return std::any_of(model.parts.begin(), model.parts.end(), [&](const Part& p) {
    return p.target == target && p.row_begin <= begin && end <= p.row_end;
  });
}

void add_text_encoder_conditions(Description& d) {
  bool kohya = false, clip = false, clip_out_or_mlp = false;
  for (const Item& it : d.items) {
    if (it.piece != Item::Piece::kPassThrough || it.tensor.rfind("lora_te", 0) != 0) continue;
    kohya = true;
    if (it.kinds.front() != Kind::kTextEncoderClip) continue;
    clip = true;
    clip_out_or_mlp = clip_out_or_mlp || it.tensor.find("_out_proj") != std::string::npos ||
                      it.tensor.find("_mlp_") != std::string::npos;
  }
  if (kohya) d.conditions.emplace_back(kKohyaTextEncoder);
  if (clip && !clip_out_or_mlp) d.conditions.emplace_back(kClipWithoutOutOrMlp);
}

// Whether the part is an attention projection (q, k, v, out) of a block.
bool attention_part(const Part& p) {
  if (p.target.ends_with("attn.qkv") || p.target.ends_with("attn.proj")) return true;
  return p.target.ends_with(".linear1") && p.row_end <= 3 * p.target_cols;
}

// Whether every block target of the layout has deltas on all its rows (the union of its parts).
template <typename IsBlock>
bool every_block_module(const LoraModel& model, IsBlock is_block) {
  const flux::Layout& l = model.layout;
  if (l.double_blocks + l.single_blocks > 4096) return false;  // a layout without block counts
  std::map<std::string_view, std::vector<std::pair<int64_t, int64_t>>> rows;
  for (const Part& p : model.parts) rows[p.target].emplace_back(p.row_begin, p.row_end);
  for (const flux::Target& t : flux::bfl_targets(l)) {
    if (!is_block(t.name)) continue;
    auto it = rows.find(t.name);
    if (it == rows.end()) return false;
    std::sort(it->second.begin(), it->second.end());
    int64_t covered = 0;
    for (auto [b, e] : it->second)
      if (b <= covered) covered = std::max(covered, e);
    if (covered < t.rows) return false;
  }
  return true;
}

void add_block_conditions(const LoraModel& model, Description& d) {
  const auto is_block = [](std::string_view t) {
    return t.rfind("double_blocks.", 0) == 0 || t.rfind("single_blocks.", 0) == 0;
  };
  if (std::any_of(model.parts.begin(), model.parts.end(),
                  [&](const Part& p) { return is_block(p.target) && !attention_part(p); }))
    d.conditions.emplace_back(kNonAttentionBlockModules);
  if (!every_block_module(model, is_block)) d.conditions.emplace_back(kNotEveryBlockModule);
  const int64_t h = model.layout.hidden;
  const std::string last_double = "double_blocks." + std::to_string(model.layout.double_blocks - 1) + ".txt_attn.qkv";
  const std::string last_single = "single_blocks." + std::to_string(model.layout.single_blocks - 1) + ".linear1";
  if (model.layout.double_blocks > 0 && model.layout.single_blocks > 0 && rows_covered(model, last_double, 0, 3 * h) &&
      rows_covered(model, last_single, 0, 3 * h))
    d.conditions.emplace_back(kLastBlocksQkv);
}

// File-level conditions (profile.h), from the file's metadata and its described items.
void add_conditions(const LoraModel& model, bool foreign_meta, bool single_suffix_bias, Description& d) {
  if (foreign_meta) d.conditions.emplace_back(kForeignMetadata);
  const auto block = [](const Item& it) {
    return !it.target.empty() && parent_kind(it.kinds.front()).value_or(it.kinds.front()) == Kind::kBlockModule;
  };
  if (std::none_of(d.items.begin(), d.items.end(), block)) d.conditions.emplace_back(kNoBlockModules);
  if (std::any_of(d.items.begin(), d.items.end(), [](const Item& it) { return it.target.rfind("single_blocks.", 0) == 0; }))
    d.conditions.emplace_back(kHasSingleBlocks);
  if (std::any_of(d.items.begin(), d.items.end(), [&](const Item& it) {
        if (it.target.empty() || block(it)) return false;
        for (Kind k : it.kinds)
          if (k == Kind::kAlphaTensor || k == Kind::kDiff || k == Kind::kDoraColumn || k == Kind::kDoraRow ||
              (k == Kind::kBiasDelta && single_suffix_bias))
            return true;
        return false;
      }))
    d.conditions.emplace_back(kTopLevelSingleSuffix);
  const int64_t h = model.layout.hidden;
  if (!rows_covered(model, "double_blocks.0.txt_attn.qkv", 0, h) || !rows_covered(model, "single_blocks.0.linear1", 0, h))
    d.conditions.emplace_back(kLacksBlock0Queries);
  add_text_encoder_conditions(d);
  add_block_conditions(model, d);
}

}  // namespace

bool measured_source(std::string_view source) { return source.find("measured") != std::string_view::npos; }

bool whole_file_condition(std::string_view c) {
  return c == kNoBlockModules || c == kLacksBlock0Queries || c == kNotEveryBlockModule || c == kLastBlocksQkv;
}

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kLoads: return "loads";
    case Outcome::kDrops: return "drops";
    case Outcome::kRejects: return "rejects";
    case Outcome::kUnknown: return "unknown";
  }
  return "unknown";
}

Description describe(const LoraModel& model) {
  Description d;
  d.dialect = model.dialect.id;
  d.arch = model.layout.arch;
  auto partial = partial_targets(model);
  const bool diffusers_names = d.dialect == Dialect::kDiffusers || d.dialect == Dialect::kDiffusersOld;
  const std::set<size_t> shadowed = diffusers_names ? alpha_pattern_shadowed(model) : std::set<size_t>{};
  for (size_t i = 0; i < model.parts.size(); ++i) {
    const Part& p = model.parts[i];
    const Kind mk = module_kind(p.target);
    auto gap = partial.find(p.target);
    const bool no_alpha = p.form == PartForm::kLowRank &&
                          std::none_of(p.source_tensors.begin(), p.source_tensors.end(),
                                       [](const Part::Source& s) { return s.role == Role::kAlpha; });
    const bool block = parent_kind(mk).value_or(mk) == Kind::kBlockModule;
    for (const Part::Source& s : p.source_tensors) {
      Item item{s.name, p.target, {mk}, role_piece(s.role), i};
      if (no_alpha) item.kinds.push_back(block ? Kind::kMissingAlpha : Kind::kMissingAlphaTop);
      if (shadowed.count(i)) item.kinds.push_back(Kind::kAlphaPatternShadowed);
      if (auto rk = role_kind(s.role, p.magnitude_per_row))
        item.kinds.push_back(*rk == Kind::kBiasDelta && bias_on_part(p) ? Kind::kBiasOnPart : *rk);
      if (s.dialect.id != d.dialect) item.kinds.push_back(Kind::kOtherDialect);
      if (gap != partial.end()) item.kinds.insert(item.kinds.end(), gap->second.begin(), gap->second.end());
      d.items.push_back(std::move(item));
    }
  }
  if (metadata_alpha_used(model)) d.items.push_back({"lora_adapter_metadata", "", {Kind::kMetadataAlpha}, Item::Piece::kMetadata, 0});
  add_passthrough(model, d);
  const bool diff_b = std::any_of(d.items.begin(), d.items.end(), [](const Item& it) { return it.tensor.ends_with(".diff_b"); });
  add_conditions(model, model.file && foreign_metadata(model.file->metadata()), diff_b, d);
  return d;
}

Description describe_output(const LoraModel& model, Style style) {
  const StyleRow& form = style_row(style);
  const bool bfl_layout = style_layout(style) == OutputLayout::kBfl;
  Description d;
  d.dialect = form.writes;
  d.arch = model.layout.arch;
  // A BFL output zero-fills the parts a fused target lacks; a diffusers output keeps the gap.
  auto partial = bfl_layout ? std::map<std::string, std::vector<Kind>>{} : partial_targets(model);
  for (size_t i = 0; i < model.parts.size(); ++i) {
    const Part& p = model.parts[i];
    const Kind mk = module_kind(p.target);
    auto gap = partial.find(p.target);
    auto with_gap = [&](std::vector<Kind> kinds) {
      if (gap != partial.end()) kinds.insert(kinds.end(), gap->second.begin(), gap->second.end());
      return kinds;
    };
    const std::string& first = p.source_tensors.empty() ? p.source_module : p.source_tensors.front().name;
    // Adapter deltas are renamed when they are alone on exactly one output module (with
    // their own tensors, alpha included), otherwise written as a dense .diff.
    if (p.form == PartForm::kLoKr || p.form == PartForm::kLoHa) {
      if (adapter_renamed(model, p, style_layout(style))) {
        for (const Part::Source& s : p.source_tensors) {
          if (s.role == Role::kBias || s.role == Role::kDiffB) continue;
          std::vector<Kind> kinds{mk};
          if (auto rk = role_kind(s.role, p.magnitude_per_row)) kinds.push_back(*rk);
          d.items.push_back({s.name, p.target, with_gap(kinds), role_piece(s.role), i});
        }
      } else {
        d.items.push_back({first, p.target, with_gap({mk, Kind::kDiff}), Item::Piece::kWeights, i});
      }
    } else if (p.form == PartForm::kDense) {
      d.items.push_back({first, p.target, with_gap({mk, Kind::kDiff}), Item::Piece::kWeights, i});
    } else if (p.form == PartForm::kLowRank) {
      d.items.push_back({first, p.target, with_gap({mk}), Item::Piece::kWeights, i});
      if (form.alpha_tensors) d.items.push_back({p.source_module + ".alpha", p.target, with_gap({mk, Kind::kAlphaTensor}),
                                                  Item::Piece::kWeights, i});
    }
    const Kind bias_kind = !bfl_layout && bias_on_part(p) ? Kind::kBiasOnPart : Kind::kBiasDelta;
    if (p.bias) d.items.push_back({p.bias->name, p.target, with_gap({mk, bias_kind}), Item::Piece::kBias, i});
    if (p.magnitude && p.form != PartForm::kLoKr && p.form != PartForm::kLoHa)
      d.items.push_back({p.magnitude->name, p.target, with_gap({mk, p.magnitude_per_row ? Kind::kDoraRow : Kind::kDoraColumn}), Item::Piece::kMagnitude, i});
  }
  add_passthrough(model, d);
  // convert writes lora_verify.* metadata (and no ai-toolkit software entry); kohya and comfy
  // write bias deltas as .diff_b.
  add_conditions(model, true, form.alpha_tensors, d);
  return d;
}

Verdict evaluate(const Profile& profile, const Description& file) {
  Verdict v;
  const StyleSupport* s = support_for(profile, file);
  if (!s) {
    v.outcome = Outcome::kUnknown;
    v.message = "how " + std::string(profile.display) + " reads " +
                (file.dialect == Dialect::kNone ? std::string("files of no known dialect")
                                                : std::string(dialect_name(file.dialect)) + file_kind_label(file) + " files") +
                " is not established";
    return v;
  }
  v.measured = measured_source(s->source);
  v.support = s;
  if (s->recognition == Recognition::kRejects) {
    v.outcome = Outcome::kRejects;
    v.message = std::string(s->message);
    return v;
  }
  if (s->recognition == Recognition::kIgnores) {
    v.outcome = file.items.empty() ? Outcome::kLoads : Outcome::kDrops;
    v.message = std::string(s->message);
    for (const Item& it : file.items)
      v.dropped.push_back({it.tensor, it.target, it.kinds.empty() ? Kind::kBlockModule : it.kinds.front(),
                           Treatment::kDropsSilently, std::string(s->message), it.piece, it.index});
    apply_unread_limit(profile, v);
    return v;
  }
  std::set<Kind> unknown;
  const DroppedTensor* first_reject = nullptr;
  std::vector<int> precedence;  // of each dropped tensor's rule
  for (const Item& it : file.items) {
    Treatment worst = Treatment::kApplies;
    const Rule* decided = nullptr;
    Kind decided_kind = it.kinds.empty() ? Kind::kBlockModule : it.kinds.front();
    for (Kind k : it.kinds) {
      const Rule* r = rule_for(*s, k);
      if (!r && neutral_kind(k)) continue;
      if (r) {
        v.measured = v.measured && measured_source(r->source);
        if (std::find(v.rules.begin(), v.rules.end(), r) == v.rules.end()) v.rules.push_back(r);
      }
      Treatment t = r ? r->treatment : Treatment::kUnknown;
      if (t == Treatment::kUnknown) unknown.insert(k);
      if (rank_of(t) > rank_of(worst)) {
        worst = t;
        decided = r;
        decided_kind = k;
      }
    }
    if (worst == Treatment::kApplies || worst == Treatment::kUnknown) continue;
    v.dropped.push_back({it.tensor, it.target, decided_kind, worst, decided ? std::string(decided->message) : "",
                         it.piece, it.index});
    precedence.push_back(decided ? decided->precedence : 0);
  }
  for (size_t i = 0; i < v.dropped.size(); ++i)
    if (v.dropped[i].treatment == Treatment::kRejectsFile &&
        (!first_reject || precedence[i] > precedence[first_reject - v.dropped.data()]))
      first_reject = &v.dropped[i];
  v.unknown.assign(unknown.begin(), unknown.end());
  if (first_reject) {
    v.outcome = Outcome::kRejects;
    v.message = first_reject->why + " (triggered by " + first_reject->tensor + ")";
  } else if (!v.dropped.empty()) {
    v.outcome = Outcome::kDrops;
    std::map<Kind, int> count;
    for (const DroppedTensor& t : v.dropped) count[t.kind]++;
    v.message = std::to_string(v.dropped.size()) + " tensor" + (v.dropped.size() == 1 ? "" : "s") + " not applied: ";
    bool first = true;
    for (const auto& [k, n] : count) {
      v.message += (first ? "" : "; ") + std::string(kind_description(k)) + " (" + std::to_string(n) + ")";
      first = false;
    }
  } else if (!v.unknown.empty()) {
    v.outcome = Outcome::kUnknown;
    v.message = "not established for " + std::string(dialect_name(file.dialect)) + " files: ";
    for (size_t i = 0; i < v.unknown.size(); ++i) v.message += (i ? ", " : "") + std::string(kind_description(v.unknown[i]));
  } else {
    v.outcome = Outcome::kLoads;
  }
  if (!v.unknown.empty() && v.outcome != Outcome::kUnknown) {
    v.message += "; also not established: ";
    for (size_t i = 0; i < v.unknown.size(); ++i) v.message += (i ? ", " : "") + std::string(kind_description(v.unknown[i]));
  }
  apply_unread_limit(profile, v);
  return v;
}

const Description& OutputForms::describe(Style s) {
  for (const auto& [style, d] : cache_)
    if (style == s) return d;
  return cache_.emplace_back(s, describe_output(*model_, s)).second;
}

std::optional<FormChoice> choose_form(const Profile& profile, OutputForms& forms) {
  std::optional<FormChoice> best;
  auto score = [](const Verdict& v) {
    return std::pair<size_t, int>(v.dropped.size(), v.outcome == Outcome::kLoads ? 0 : 1);
  };
  for (Style s : profile.forms) {
    Verdict v = evaluate(profile, forms.describe(s));
    if (v.outcome == Outcome::kLoads) return FormChoice{s, std::move(v)};
    if (!best || score(v) < score(best->verdict)) best = FormChoice{s, std::move(v)};
  }
  return best;
}

std::optional<FormChoice> choose_form(const Profile& profile, const LoraModel& model) {
  OutputForms forms(model);
  return choose_form(profile, forms);
}

DefaultChoice default_form(const LoraModel& model) {
  DefaultChoice best{Style::kKohya, {}};
  int best_count = -1;
  OutputForms forms(model);
  for (Style s : {Style::kKohya, Style::kPeft, Style::kDiffusers, Style::kComfy, Style::kBfl}) {
    const Description& d = forms.describe(s);
    int count = 0;
    std::vector<std::string> not_served;
    for (const Profile& p : profiles()) {
      if (evaluate(p, d).outcome == Outcome::kLoads) ++count;
      else not_served.emplace_back(p.name);
    }
    if (count > best_count) {
      best_count = count;
      best = {s, std::move(not_served)};
    }
  }
  return best;
}

LoraModel without(const LoraModel& model, const std::vector<DroppedTensor>& dropped) {
  std::set<size_t> parts, biases, magnitudes, passthrough;
  for (const DroppedTensor& t : dropped) {
    switch (t.piece) {
      case Item::Piece::kWeights: parts.insert(t.index); break;
      case Item::Piece::kBias: biases.insert(t.index); break;
      case Item::Piece::kMagnitude: magnitudes.insert(t.index); break;
      case Item::Piece::kPassThrough: passthrough.insert(t.index); break;
      case Item::Piece::kMetadata: break;
    }
  }
  LoraModel out = model.empty_copy();
  out.findings = model.findings;
  for (size_t i = 0; i < model.parts.size(); ++i) {
    if (parts.count(i)) continue;
    Part p = model.parts[i];
    if (biases.count(i)) p.bias = nullptr;
    if (magnitudes.count(i)) p.magnitude = nullptr;
    if (p.form == PartForm::kBiasOnly && !p.bias) continue;
    out.parts.push_back(std::move(p));
  }
  for (size_t i = 0; i < model.passthrough.size(); ++i)
    if (!passthrough.count(i)) out.passthrough.push_back(model.passthrough[i]);
  return out;
}

}  // namespace lv::loaders
