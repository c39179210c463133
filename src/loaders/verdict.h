// Per-loader verdicts: what a profiled loader does with a file lora-verify has read (or
// with the file `convert --style S` would write from it), and which output form serves a
// loader best. Pure functions of the canonical model and the profile table.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "loaders/profile.h"
#include "lora/model.h"

namespace lv::loaders {

// One tensor as a loader sees it: its kinds (module kind, role kind, partial-target kinds).
struct Item {
  std::string tensor;  // name in the described file (for outputs: the input tensor it comes from)
  std::string target;  // BFL target ("" for pass-through tensors)
  std::vector<Kind> kinds;
  // Which piece of the canonical model it is, so a drop can be applied to the model.
  enum class Piece { kWeights, kBias, kMagnitude, kPassThrough, kMetadata } piece = Piece::kWeights;
  size_t index = 0;  // into LoraModel::parts or ::passthrough
};

struct Description {
  Dialect dialect = Dialect::kNone;  // the file's key style (its base dialect: LyCORIS forms are kinds)
  uint8_t arch = 0;     // flux::Arch bits of its layout: which of a profile's entries apply (kFileKinds)
  std::vector<std::string> conditions;  // file-level conditions (profile.h: kForeignMetadata)
  std::vector<Item> items;
};

// The file as it is.
Description describe(const LoraModel& model);
// The file `convert` would write from `model` in `style` (names and kinds, nothing built).
Description describe_output(const LoraModel& model, Style style);

enum class Outcome { kLoads, kDrops, kRejects, kUnknown };
std::string_view outcome_name(Outcome o);  // "loads", "drops", "rejects", "unknown"

struct DroppedTensor {
  std::string tensor;
  std::string target;
  Kind kind;             // the kind that makes the loader drop or reject it
  Treatment treatment;
  std::string why;       // the rule's message
  Item::Piece piece = Item::Piece::kWeights;
  size_t index = 0;
};

struct Verdict {
  Outcome outcome = Outcome::kUnknown;
  std::string message;  // the loader's message for rejects; a summary otherwise
  // Tensors not applied (drops), or those that make the loader reject the file (rejects).
  std::vector<DroppedTensor> dropped;
  std::vector<Kind> unknown;  // kinds present whose treatment is not established
  // Every fact the verdict rests on was measured with the app's own code (a source that
  // names a measurement), not established by reading it.
  bool measured = false;
  // What the verdict rests on: the style entry and the rules consulted (static table rows).
  const StyleSupport* support = nullptr;
  std::vector<const Rule*> rules;
};
bool measured_source(std::string_view source);

Verdict evaluate(const Profile& profile, const Description& file);

// The output form of `model` that `profile` reads most completely: the first of its forms
// that loads, else the one leaving out the fewest tensors. nullopt when the profile has no
// established form.
struct FormChoice {
  Style style;
  Verdict verdict;  // of describe_output(model, style)
};
std::optional<FormChoice> choose_form(const Profile& profile, const LoraModel& model);

// describe_output of one model, each style described once: choosing the form of every
// profile asks for the same few styles again and again.
class OutputForms {
 public:
  explicit OutputForms(const LoraModel& model) : model_(&model) {}
  const Description& describe(Style s);

 private:
  const LoraModel* model_;
  std::vector<std::pair<Style, Description>> cache_;
};
std::optional<FormChoice> choose_form(const Profile& profile, OutputForms& forms);

// The default output style of `convert`: the style whose output loads completely in the
// most profiled loaders (ties: kohya, peft, diffusers, comfy, bfl). Lists the loaders it does
// not serve completely.
struct DefaultChoice {
  Style style;
  std::vector<std::string> not_served;
};
DefaultChoice default_form(const LoraModel& model);

// `model` without the tensors `dropped` names: parts whose weights drop are removed, dropped
// biases and magnitudes cleared, dropped pass-through tensors left out.
LoraModel without(const LoraModel& model, const std::vector<DroppedTensor>& dropped);

}  // namespace lv::loaders
