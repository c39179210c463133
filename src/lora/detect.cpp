// Family detection (see detect.h): every rule reads the family table (flux/family.cpp) and
// the module tables (flux/layout.cpp); no family is named in the code.
#include "lora/detect.h"

#include <algorithm>
#include <map>
#include <set>

#include "lora/placement.h"

namespace lv {
namespace {

constexpr uint8_t kArchs[] = {flux::kArchFlux1, flux::kArchChroma, flux::kArchFlux2};

// Architectures whose module table has this module name (in its naming).
uint8_t archs_of(const ParsedKey& k) {
  uint8_t m = 0;
  for (uint8_t a : kArchs)
    if (place(flux::Layout::any_blocks(a), k)) m |= a;
  return m;
}

std::string arch_label(uint8_t m) {
  std::vector<std::string> names;
  for (const flux::Family& f : flux::families())
    if (!f.test_only && (f.layout.arch & m)) {
      std::string d(f.display);
      if (std::find(names.begin(), names.end(), d) == names.end()) names.push_back(d);
    }
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? (i + 1 == names.size() ? " or " : ", ") : "") + names[i];
  return s.empty() ? "no known family" : s;
}

// How well a family's table fits every factor of the file.
struct Fit {
  const flux::Family* family = nullptr;
  int64_t matches = 0, mismatches = 0;
  std::string first_mismatch;  // "tensor X: 21504 rows, FLUX.2 [klein] 4B needs 27648"
};

flux::Layout open_layout(const flux::Family& f) {
  flux::Layout l = flux::layout_of(f);
  if (f.double_from_file) l.double_blocks = 1'000'000'000;
  if (f.single_from_file) l.single_blocks = 1'000'000'000;
  return l;
}

Fit fit(const flux::Family& f, const std::vector<KeyedTensor>& keyed) {
  Fit r;
  r.family = &f;
  const flux::Layout l = open_layout(f);
  for (const KeyedTensor& kt : keyed) {
    const ParsedKey& k = kt.key;
    const st::TensorView* t = kt.tensor;
    const bool down = k.role == Role::kDown, up = k.role == Role::kUp, diff = k.role == Role::kDiff;
    if (!(down || up || diff) || t->shape.size() != 2) continue;
    auto p = place(l, k);
    auto miss = [&](const std::string& why) {
      if (r.mismatches++ == 0) r.first_mismatch = t->name + ": " + why;
    };
    if (!p) {
      bool single = false;
      int64_t i = flux::block_index(k.module, single);
      if (i >= 0 && i >= (single ? l.single_blocks : l.double_blocks))
        miss((single ? "single block " : "double block ") + std::to_string(i) + ", " + std::string(f.display) + " has " +
             std::to_string(single ? l.single_blocks : l.double_blocks));
      else
        miss("module " + k.module + " does not exist in " + std::string(f.display));
      continue;
    }
    const uint64_t rows = static_cast<uint64_t>(p->row_end - p->row_begin), cols = static_cast<uint64_t>(p->cols);
    // img_in's input width differs between variants of one family (64 dev, 128 Canny/Depth,
    // 384 Fill): it is evidence only where the family fixes it, and never decides alone.
    const bool img_in_cols = p->target == "img_in" && !f.img_in_widths.empty();
    if ((down || diff) && !img_in_cols && t->shape[1] != cols) {
      miss(std::to_string(t->shape[1]) + " input columns, " + std::string(f.display) + " has " + std::to_string(cols));
      continue;
    }
    if ((up || diff) && t->shape[0] != rows) {
      miss(std::to_string(t->shape[0]) + " rows, " + std::string(f.display) + " has " + std::to_string(rows));
      continue;
    }
    ++r.matches;
  }
  // LoKr deltas are measured as the Kronecker product of their factors' shapes.
  struct Kron {
    const KeyedTensor* any = nullptr;
    uint64_t r1 = 0, c1 = 0, r2 = 0, c2 = 0;
  };
  std::map<std::string, Kron> krons;
  for (const KeyedTensor& kt : keyed) {
    const st::TensorView* t = kt.tensor;
    if (t->shape.size() != 2) continue;
    Kron& k = krons[kt.key.group];
    switch (kt.key.role) {
      case Role::kLokrW1: k.r1 = t->shape[0], k.c1 = t->shape[1]; break;
      case Role::kLokrW1A: k.r1 = t->shape[0]; break;
      case Role::kLokrW1B: k.c1 = t->shape[1]; break;
      case Role::kLokrW2: k.r2 = t->shape[0], k.c2 = t->shape[1]; break;
      case Role::kLokrW2A: k.r2 = t->shape[0]; break;
      case Role::kLokrW2B: k.c2 = t->shape[1]; break;
      default: continue;
    }
    k.any = &kt;
  }
  for (const auto& [group, k] : krons) {
    if (!k.any || !k.r1 || !k.c1 || !k.r2 || !k.c2 || k.r1 > (1u << 31) || k.r2 > (1u << 31) || k.c1 > (1u << 31) ||
        k.c2 > (1u << 31))
      continue;
    auto p = place(l, k.any->key);
    if (!p) continue;  // counted with the other tensors of a misplaced module, if any
    const uint64_t rows = k.r1 * k.r2, cols = k.c1 * k.c2;
    if (rows != static_cast<uint64_t>(p->row_end - p->row_begin) || cols != static_cast<uint64_t>(p->cols)) {
      if (r.mismatches++ == 0)
        r.first_mismatch = k.any->tensor->name + ": the Kronecker product is " + std::to_string(rows) + "x" +
                           std::to_string(cols) + ", " + std::string(f.display) + " needs " +
                           std::to_string(p->row_end - p->row_begin) + "x" + std::to_string(p->cols);
    } else {
      ++r.matches;
    }
  }
  return r;
}

// "64, 128 (Canny/Depth) or 384 (Fill)".
std::string img_in_widths_text(const flux::Family& f) {
  std::string s;
  for (size_t i = 0; i < f.img_in_widths.size(); ++i) {
    const flux::ImgInWidth& v = f.img_in_widths[i];
    s += (i == 0 ? "" : i + 1 == f.img_in_widths.size() ? " or " : ", ") + std::to_string(v.width);
    if (!v.variants.empty()) s += " (" + std::string(v.variants) + ")";
  }
  return s;
}

// Block counts and img_in width from the file, within what the family allows.
void fill_from_file(const flux::Family& f, const std::vector<KeyedTensor>& keyed, Detection& d) {
  int64_t max_double = -1, max_single = -1;
  for (const KeyedTensor& kt : keyed) {
    bool single = false;
    int64_t i = flux::block_index(kt.key.module, single);
    (single ? max_single : max_double) = std::max(single ? max_single : max_double, i);
  }
  const int64_t kMaxBlocks = 4096;  // no FLUX-like model comes near; bounds the layout tables
  if (max_double >= 0 || max_single >= 0)
    d.evidence.push_back("blocks: double " + (max_double < 0 ? std::string("none") : "0.." + std::to_string(max_double)) +
                         ", single " + (max_single < 0 ? std::string("none") : "0.." + std::to_string(max_single)));
  // Families that take both counts from the file (FLUX.1) grow with a warning.
  const bool beyond = f.double_from_file && f.single_from_file &&
                      (max_double >= d.layout.double_blocks || max_single >= d.layout.single_blocks);
  if (beyond)
    d.findings.push_back({"flux.blocks.beyond_layout", Severity::kWarning, "",
                          "the file names double block " + std::to_string(max_double) + " and single block " +
                              std::to_string(max_single) + ", " + std::string(f.display) + " has " +
                              std::to_string(d.layout.double_blocks) + " and " + std::to_string(d.layout.single_blocks) +
                              " (indices from 0)"});
  if (f.double_from_file) d.layout.double_blocks = std::min(kMaxBlocks, std::max(d.layout.double_blocks, max_double + 1));
  if (f.single_from_file) {
    // A family whose single count is unconfirmed (Flex.1) takes it from the file alone.
    const int64_t base = f.double_from_file ? d.layout.single_blocks : 1;
    d.layout.single_blocks = std::min(kMaxBlocks, std::max(base, max_single + 1));
  }
  for (const KeyedTensor& kt : keyed) {
    auto p = place(d.layout, kt.key);
    if (!p || p->target != "img_in" || kt.key.role != Role::kDown || kt.tensor->shape.size() != 2) continue;
    const int64_t w = static_cast<int64_t>(std::min<uint64_t>(kt.tensor->shape[1], 1u << 20));
    if (f.img_in_widths.empty()) break;
    d.layout.in_channels = w;
    if (std::none_of(f.img_in_widths.begin(), f.img_in_widths.end(), [&](const flux::ImgInWidth& v) { return v.width == w; }))
      d.findings.push_back({"flux.img_in.width", Severity::kWarning, kt.tensor->name,
                            "img_in input width " + std::to_string(w) + " is none of " + std::string(f.display) + "'s " +
                                img_in_widths_text(f)});
    break;
  }
}

// Phase 1, names: the architectures whose tables have every module the file names.
Result<uint8_t> archs_from_names(const std::vector<KeyedTensor>& keyed, const std::string& path, Detection& d) {
  uint8_t mask = flux::kArchAny;
  std::map<uint8_t, std::pair<int64_t, std::string>> narrowing;  // archs of a name → count, example
  for (const KeyedTensor& kt : keyed) {
    uint8_t m = archs_of(kt.key);
    if (m == 0) continue;  // a module of no table: reported later as unknown
    if (m != flux::kArchAny) {
      auto& n = narrowing[m];
      if (n.first++ == 0) n.second = kt.tensor->name;
    }
    if ((mask & m) == 0) {
      std::string other;
      for (const auto& [om, n] : narrowing)
        if ((om & m) == 0) other = n.second;
      return make_error(ErrorCode::kBadInput, path + ": malformed: it names modules of " + arch_label(m) + " (e.g. '" +
                                                  kt.tensor->name + "') and of " + arch_label(mask) + " (e.g. '" +
                                                  other + "'); no model has both");
    }
    mask &= m;
  }
  // The names that decided (the narrowest set), one line.
  for (const auto& [m, n] : narrowing)
    if (m == mask)
      d.evidence.push_back("names: " + std::to_string(n.first) + " tensor" + (n.first == 1 ? "" : "s") +
                           " name modules only " + arch_label(m) + " has (e.g. " + n.second + ")");
  return mask;
}

// No family fits every factor: the closest one is used and the misfits become shape findings,
// unless nothing fits at all (another model, or a width no family has).
Result<const Fit*> closest_fit(const std::vector<Fit>& fits, const std::string& path, Detection& d) {
  const Fit* best = nullptr;
  for (const Fit& f : fits)
    if (f.matches > 0 && (!best || f.matches - f.mismatches > best->matches - best->mismatches)) best = &f;
  if (!best) {
    std::string example = fits.empty() ? std::string() : fits.front().first_mismatch;
    return make_error(ErrorCode::kBadInput,
                      path + ": not a LoRA of a known FLUX family: no family's module shapes fit its factors (" +
                          (example.empty() ? std::string("no factor to measure") : example) +
                          "); known: FLUX.1, Chroma and Flex.1 with hidden 3072, FLUX.2 [dev] 6144, [klein] 9B 4096, "
                          "[klein] 4B 3072");
  }
  d.evidence.push_back("widths: no family fits every factor; closest: " + std::string(best->family->display) + " (" +
                       std::to_string(best->matches) + " fit, " + std::to_string(best->mismatches) + " do not)");
  return best;
}

// Several families fit: one group of them wins, settled by a family lora-verify recorded in
// the file where the groups differ; more than one group left is ambiguous.
Result<const Fit*> choose_among(std::vector<const Fit*> fitting, const std::string& path, const std::string& recorded,
                                Detection& d) {
  std::vector<std::string> groups;
  for (const Fit* f : fitting)
    if (std::find(groups.begin(), groups.end(), f->family->group) == groups.end()) groups.emplace_back(f->family->group);
  const Fit* stamped = nullptr;
  for (const Fit* f : fitting)
    if (!recorded.empty() && f->family->name == recorded) stamped = f;
  if (groups.size() > 1 && stamped) {
    std::string others;
    for (const std::string& g : groups)
      if (g != stamped->family->group) others += (others.empty() ? "" : ", ") + g;
    d.evidence.push_back("metadata: lora_verify.model = " + recorded + " (the factors also fit " + others + ")");
    fitting = {stamped};
    groups = {std::string(stamped->family->group)};
  }
  if (groups.size() > 1) {
    std::string names;
    for (const std::string& g : groups)
      for (const Fit* f : fitting)
        if (f->family->group == g) {
          names += (names.empty() ? "" : ", ") + std::string(f->family->name) + " (" + std::string(f->family->display) + ")";
          break;
        }
    return make_error(ErrorCode::kBadInput,
                      path + ": ambiguous model: every factor fits " + names +
                          "; what would decide is missing (modules whose shapes differ between them — linear1, "
                          "img_mlp.0/.2, linear2, final_layer.linear, txt_in — block indices beyond the smaller "
                          "model's, or names only one of them has); name the model with --model (" +
                          flux::family_names() + ")");
  }
  const Fit* chosen = fitting.front();
  std::string also;
  for (const Fit* f : fitting)
    if (f != chosen) also += (also.empty() ? "" : ", ") + std::string(f->family->display);
  d.evidence.push_back("widths: all " + std::to_string(chosen->matches) + " factor shapes fit " +
                       std::string(chosen->family->display) + " (hidden " + std::to_string(chosen->family->layout.hidden) +
                       ")" + (also.empty() ? "" : "; also consistent with " + also + " (same tables; --model names them)"));
  return chosen;
}

}  // namespace

Result<Detection> detect_family(const std::vector<KeyedTensor>& keyed, const std::string& path,
                                const flux::Family* forced, const std::string& recorded) {
  Detection d;
  if (forced) {
    d.family = forced;
    d.layout = flux::layout_of(*forced);
    d.evidence.push_back("named with --model " + std::string(forced->name));
    fill_from_file(*forced, keyed, d);
    return d;
  }
  LV_TRY_ASSIGN(mask, archs_from_names(keyed, path, d));
  // Phase 2, widths and block indices: every family whose tables the names allow, fitted.
  std::vector<Fit> fits;
  for (const flux::Family& f : flux::families())
    if (f.layout.arch & mask) fits.push_back(fit(f, keyed));
  std::vector<const Fit*> fitting;
  for (const Fit& f : fits)
    if (f.mismatches == 0 && f.matches > 0) fitting.push_back(&f);
  auto chosen_or = fitting.empty() ? closest_fit(fits, path, d) : choose_among(fitting, path, recorded, d);
  if (!chosen_or.ok()) return chosen_or.take_error();
  const Fit* chosen = chosen_or.value();
  int ruled = 0;
  for (const Fit& f : fits)
    if (f.mismatches > 0 && f.family != chosen->family && !f.family->test_only && ruled++ < 3)
      d.evidence.push_back("not " + std::string(f.family->display) + ": " + f.first_mismatch);
  d.family = chosen->family;
  d.layout = flux::layout_of(*chosen->family);
  fill_from_file(*chosen->family, keyed, d);
  return d;
}

}  // namespace lv
