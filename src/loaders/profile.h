// Loader profiles: what each application that users run does with each kind of tensor in
// each key style — applies it, drops it (silently or with a warning), or rejects the whole
// file — as data (the table is in profiles.cpp; the facts and their sources in
// docs/loaders.md). One code path (verdict.cpp) reads it for reports, `convert --for`, the
// default output style and the matrix.
#pragma once

#include <iterator>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "flux/layout.h"
#include "lora/converter.h"

namespace lv::loaders {

// Kinds of tensor a loader may treat differently. A tensor has the kind of its module
// (block, top-level, final layer) and the kind of its role (alpha, bias, DoRA, adapter
// form); the worst treatment of its kinds is what happens to it.
enum class Kind {
  kBlockModule,       // LoRA factors on double_blocks.* / single_blocks.* modules
  kTextMlp,           // double blocks' text-stream MLP (txt_mlp.0/2, diffusers ff_context): a block module
  kTopLevelModule,    // img_in, txt_in, time_in.*, vector_in.*
  kGuidanceIn,        // guidance_in.* (a top-level module; rules for top-level apply unless stated)
  kTimeEmbedder,      // time_in.* (top-level; stated apart where a loader treats it apart)
  kSharedModulation,  // FLUX.2 double_stream_modulation_* / single_stream_modulation (top-level)
  kFinalLinear,       // final_layer.linear (diffusers proj_out)
  kFinalModulation,   // final_layer.adaLN_modulation.1 (diffusers norm_out.linear, halves swapped)
  kPartialAttention,  // a diffusers-named fused target with some of q, k, v absent
  kPartialMlp,        // a single block with q, k, v but no proj_mlp
  kAlphaTensor,       // .alpha
  kMetadataAlpha,     // scales from the lora_adapter_metadata entry
  kBiasDelta,         // lora_B.bias (scaled) or .diff_b (unscaled), whichever the style writes
  kDoraColumn,        // per-column DoRA scale: dora_scale [1, in]
  kDoraRow,           // per-row DoRA magnitude: lora_magnitude_vector [out], dora_scale [out, 1]
  kLokr,
  kLoha,
  kDiff,              // dense .diff
  kTextEncoderClip,   // lora_te1_*, lora_te_*, text_encoder.* (CLIP-L; passed through by lora-verify)
  kTextEncoderT5Te2,  // lora_te2_*, text_encoder_2.* (T5-XXL)
  kTextEncoderT5Te3,  // lora_te3_* (T5-XXL, sd-scripts' spelling)
  kTextEncoderOther,  // text_encoders.* (ComfyUI's spelling)
  kNormScale,         // absolute RMSNorm scales (set-value, passed through)
  kOtherDialect,      // a tensor in another key style than the file's main one
  kMissingAlpha,      // a low-rank block module written without its .alpha
  kBiasOnPart,        // a bias delta of a row range of a fused target, or of halves stored swapped (norm_out)
  kTextEncoderClipDiffusers,  // text_encoder.* (CLIP-L in diffusers spelling; a kTextEncoderClip)
  // A single block's proj_out whose alpha is the file's most common one while the top-level
  // proj_out's differs: PEFT's alpha_pattern matches "proj_out" as a suffix of its name.
  kAlphaPatternShadowed,
  kMissingAlphaTop,   // a low-rank top-level or final-layer module written without its .alpha
};
inline constexpr int kKindCount = static_cast<int>(Kind::kMissingAlphaTop) + 1;
std::string_view kind_name(Kind k);         // stable ids: "block-module", "alpha-tensor", …
std::string_view kind_description(Kind k);  // for people: "top-level modules (img_in, …)"
// The kind whose rule applies when a loader has none for `k` (kGuidanceIn → kTopLevelModule).
std::optional<Kind> parent_kind(Kind k);
// Kinds that describe a condition rather than a tensor's content: without a rule they change
// nothing (kMissingAlpha: lora-verify, like most loaders, reads a missing .alpha as scale 1).
bool neutral_kind(Kind k);

enum class Treatment {
  kApplies,
  kDropsSilently,
  kDropsWithWarning,
  kRejectsFile,
  kUnknown,  // not established: never guessed
};
std::string_view treatment_name(Treatment t);

struct Rule {
  Kind kind;
  Treatment treatment;
  // What the loader says (rejection or warning) as it says it, `<…>` standing for what depends
  // on the file; after " — ", why.
  std::string_view message;
  std::string_view source;   // where the fact was established
  // Among the rejecting tensors of a file, the rule with the highest precedence is the one whose
  // message the loader shows (the check it runs first); ties: the first tensor.
  int precedence = 0;
};

// How a loader reads files of one key style (dialect ids as lora-verify detects them).
enum class Recognition {
  kReads,    // read as a FLUX LoRA; the rules say what happens to each kind
  kIgnores,  // no key matches: the file loads and nothing is applied
  kRejects,  // the file is refused
};

// Conditions on a whole file that select a loader's StyleSupport (verdict.cpp computes them).
inline constexpr std::string_view kForeignMetadata = "metadata-without-ai-toolkit-software";
inline constexpr std::string_view kNoBlockModules = "no-block-modules";
// A diffusers-layout file without the query projections of double block 0 (add_q_proj) and
// single block 0 (to_q).
inline constexpr std::string_view kLacksBlock0Queries = "lacks-block-0-queries";
inline constexpr std::string_view kHasSingleBlocks = "single-blocks";
// A top-level module carries a single-suffix tensor (.alpha, .diff, .diff_b, .dora_scale).
inline constexpr std::string_view kTopLevelSingleSuffix = "top-level-single-suffix";
// Text-encoder tensors in kohya spelling (lora_te_, lora_te1_, lora_te2_, lora_te3_).
inline constexpr std::string_view kKohyaTextEncoder = "kohya-text-encoder";
// CLIP-L tensors in kohya spelling none of which is an attention output (out_proj) or MLP
// module: the key style diffusers infers for text-encoder LoRAs cannot be told.
inline constexpr std::string_view kClipWithoutOutOrMlp = "clip-without-out-proj-or-mlp";
// Some module of some block of the layout carries no delta (on all its rows).
inline constexpr std::string_view kNotEveryBlockModule = "not-every-block-module";
// A block delta on something else than the attention (q, k, v, out): MLPs, modulations,
// a single block's proj_mlp or proj_out.
inline constexpr std::string_view kNonAttentionBlockModules = "non-attention-block-modules";
// The text query/key/value of the last double block and the single-block q/k/v of the last
// single block both carry deltas.
inline constexpr std::string_view kLastBlocksQkv = "last-blocks-qkv";
// Conditions about the whole file that a part of it (a group of a streamed output) cannot tell.
bool whole_file_condition(std::string_view condition);

struct StyleSupport {
  std::span<const Dialect> dialects;
  // Only for files with this condition ("" = any file). The first matching entry is used, so
  // conditional entries come before the plain one.
  std::string_view condition;
  Recognition recognition = Recognition::kReads;
  std::string_view message;  // kIgnores / kRejects: what the loader says
  std::span<const Rule> rules;  // kinds not listed are unknown
  std::string_view source;
};

// The kinds of file a loader tells apart by architecture, each with its own entries in a
// profile: FLUX.1-shaped files (FLUX.1, Chroma, Flex.1) and FLUX.2 files (only what is
// established). A new architecture a loader reads differently is a row here.
struct FileKind {
  uint8_t arch;             // flux::Arch bits of the files of this kind
  std::string_view label;   // in messages: "how X reads kohya FLUX.2 files"; "" for the first
};
inline constexpr FileKind kFileKinds[] = {{flux::kArchFlux1 | flux::kArchChroma, ""}, {flux::kArchFlux2, "FLUX.2"}};
inline constexpr size_t kFileKindCount = std::size(kFileKinds);
// The kind of a file of layout architecture `arch` (the first one when none names it).
size_t file_kind(uint8_t arch);

struct Profile {
  std::string_view name;         // "invokeai", as given to --for
  std::string_view display;      // "InvokeAI (current)"
  std::string_view established;  // loader version or commit the facts were established at
  std::string_view measured;     // data/loaders/*.json the "measured" facts come from ("" = none)
  std::span<const StyleSupport> styles[kFileKindCount];  // entries per kFileKinds row
  // lora-verify output styles this loader reads, best first (docs/loaders.md §3). Empty when
  // no form is established: `--for` then refuses.
  std::span<const Style> forms;
  std::string_view notes;
  // Some loaders skip a whole file when too many of its tensors are not read: more than
  // max_unread dropped tensors then mean the file is rejected with unread_message.
  int max_unread = -1;
  std::string_view unread_message;
};

// Every profiled loader, in report order.
std::span<const Profile> profiles();
const Profile* find_profile(std::string_view name);
// "invokeai, invokeai-5.1, comfyui, …" for messages and --help.
std::string profile_names();

}  // namespace lv::loaders
