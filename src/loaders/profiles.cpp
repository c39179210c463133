// The loader profile table (docs/loaders.md has the facts, their measurements and sources).
// Adding a loader or a fact is adding rows here; nothing else branches on a loader's name.
#include <array>
#include <string>

#include "loaders/profile.h"

namespace lv::loaders {
namespace {

using K = Kind;
using T = Treatment;
using D = Dialect;

// Where each fact comes from. "measured" facts were established by loading lora-verify's
// outputs through the loader's own code; "code" facts by reading that code at the commit named.
constexpr std::string_view kMeasured = "docs/loaders.md §1 (measured)";
constexpr std::string_view kRules = "docs/loaders.md §2";
constexpr std::string_view kPeers = "docs/formats.md#flux1-peer-failures";
constexpr std::string_view kInvokeCode = "code: InvokeAI 8e71a8a5 (docs/loaders.md §4)";
constexpr std::string_view kInvoke51Code = "code: InvokeAI v5.1.1 (docs/loaders.md §4)";
constexpr std::string_view kComfyCode = "code: ComfyUI a125cd84 (docs/loaders.md §4)";
constexpr std::string_view kDiffusersCode = "code: diffusers 58eb52c0 (docs/loaders.md §4)";
constexpr std::string_view kSdScriptsCode = "code: sd-scripts 48d368fa (docs/loaders.md §4)";
constexpr std::string_view kForgeCode = "code: Forge dfdcbab6 (docs/loaders.md §4)";
constexpr std::string_view kSdcppCode = "code: stable-diffusion.cpp 97d29908 (docs/loaders.md §4)";

// Key styles (dialects as lora-verify reads them; src/lora/dialects.cpp).
constexpr std::array<Dialect, 1> kKohya = {D::kKohya};
constexpr std::array<Dialect, 1> kComfy = {D::kComfy};
constexpr std::array<Dialect, 2> kKohyaOrComfy = {D::kKohya, D::kComfy};
constexpr std::array<Dialect, 1> kAiToolkit = {D::kAiToolkit};
constexpr std::array<Dialect, 1> kBareBfl = {D::kBfl};
constexpr std::array<Dialect, 1> kDiffusers = {D::kDiffusers};
constexpr std::array<Dialect, 3> kDiffusersAny = {D::kDiffusers, D::kDiffusersOld, D::kFal};
constexpr std::array<Dialect, 2> kDiffusersOrFal = {D::kDiffusers, D::kFal};
constexpr std::array<Dialect, 1> kDiffusersOld = {D::kDiffusersOld};
constexpr std::array<Dialect, 2> kDiffusersAndOld = {D::kDiffusers, D::kDiffusersOld};
constexpr std::array<Dialect, 1> kFal = {D::kFal};
// Styles whose files diffusers converts as kohya files once they hold kohya text-encoder keys.
constexpr std::array<Dialect, 5> kDiffusersTeStyles = {D::kKohya, D::kComfy, D::kBfl, D::kXlabs, D::kFal};
constexpr std::array<Dialect, 3> kNotKohyaButTe = {D::kBfl, D::kXlabs, D::kFal};
constexpr std::array<Dialect, 1> kOneTrainer = {D::kOneTrainer};
constexpr std::array<Dialect, 1> kOneTrainerBfl = {D::kOneTrainerBfl};
constexpr std::array<Dialect, 1> kLycoris = {D::kLycoris};
constexpr std::array<Dialect, 1> kXlabs = {D::kXlabs};
constexpr std::array<Dialect, 5> kUnmapped = {D::kBfl, D::kXlabs, D::kFalKontext, D::kFal, D::kOneTrainerBfl};
constexpr std::array<Dialect, 6> kSdcppUnmapped = {D::kBfl, D::kXlabs, D::kFalKontext, D::kFal, D::kOneTrainerBfl, D::kOneTrainer};
constexpr std::array<Dialect, 9> kNotKohya = {D::kComfy, D::kAiToolkit, D::kBfl, D::kDiffusers, D::kDiffusersOld, D::kOneTrainer, D::kOneTrainerBfl, D::kXlabs, D::kFal};

// ---- InvokeAI (current) ----
// Measured (data/loaders/invokeai-8e71a8a51939.json): the install probe (the LyCORIS config's
// checks, flux_format_from_state_dict with the file's metadata) runs before the loader; a file
// it does not take for a FLUX LoRA never reaches the loader. Its messages come first (precedence 2).
constexpr std::string_view kInvokeData = "measured: data/loaders/invokeai-8e71a8a51939.json";
constexpr std::string_view kInvokeProbe =
    "NotAMatchError: unrecognized token vector length None — the install probe recognises no FLUX LoRA format in "
    "the file (it installs as an unknown model)";
constexpr std::string_view kInvokeHeuristics =
    "NotAMatchError: model does not match LyCORIS LoRA heuristics — the install probe finds no LoRA key prefix or "
    "suffix it knows";
constexpr std::string_view kInvokeUnexpected =
    "Unexpected keys found in LoRA/LyCORIS layer, model might work incorrectly! — the key is not applied";
constexpr std::string_view kInvokeGrouping =
    "ValueError: Unsupported lora format: dict_keys([<keys>]) — single-suffix keys are grouped under the parent module";
constexpr std::string_view kInvokeUnpack =
    "ValueError: not enough values to unpack (expected 2, got 1) — a top-level module's single-suffix key has no "
    "parent to be grouped under";
constexpr std::array kInvokeKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kFinalModulation, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kFinalLinear, T::kDropsSilently, "lora_unet_final_layer* keys are skipped without a warning", kInvokeData},
    Rule{K::kBiasDelta, T::kDropsWithWarning, kInvokeUnexpected, kInvokeData},
    Rule{K::kDoraColumn, T::kApplies, "", kInvokeCode},
    Rule{K::kLokr, T::kApplies, "", kInvokeCode},
    Rule{K::kLoha, T::kApplies, "", kInvokeCode},
    Rule{K::kDiff, T::kApplies, "", kInvokeCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kInvokeData},
    Rule{K::kTextEncoderT5Te2, T::kApplies, "", kInvokeCode},
    Rule{K::kTextEncoderT5Te3, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
};
// diffusion_model. files without an ai-toolkit `software` entry in their metadata: the probe's
// ai-toolkit detector refuses them and only its BFL-PEFT detector (lora_A/lora_B/.alpha keys under
// diffusion_model., with block keys) can take them; the loader, which passes no metadata, then
// reads them as ai-toolkit files.
constexpr std::array kInvokeBflPrefixMetadata = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeData},
    Rule{K::kTopLevelModule, T::kApplies, "", kInvokeData},
    Rule{K::kFinalLinear, T::kApplies, "", kInvokeData},
    Rule{K::kFinalModulation, T::kApplies, "", kInvokeData},
    Rule{K::kAlphaTensor, T::kRejectsFile, kInvokeUnpack, kInvokeData},
    Rule{K::kBiasDelta, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kTextEncoderClip, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kTextEncoderOther, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
};
// comfy files with such metadata: no detector takes lora_down/lora_up under diffusion_model.
constexpr std::array kInvokeComfyMetadata = {
    Rule{K::kBlockModule, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kTopLevelModule, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kFinalLinear, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kFinalModulation, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kTextEncoderClip, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
};
constexpr std::array kInvokeComfy = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeData},
    Rule{K::kTopLevelModule, T::kApplies, "", kInvokeData},
    Rule{K::kFinalLinear, T::kApplies, "", kInvokeData},
    Rule{K::kFinalModulation, T::kApplies, "", kInvokeData},
    Rule{K::kAlphaTensor, T::kRejectsFile, kInvokeGrouping, kInvokeData},
    Rule{K::kBiasDelta, T::kRejectsFile, kInvokeGrouping, kInvokeData},
    Rule{K::kDoraColumn, T::kRejectsFile, kInvokeGrouping, kInvokeCode},
    Rule{K::kDoraRow, T::kRejectsFile, kInvokeGrouping, kInvokeCode},
    Rule{K::kDiff, T::kRejectsFile, kInvokeGrouping, kInvokeCode},
    Rule{K::kLokr, T::kApplies, "", kInvokeCode},
    Rule{K::kLoha, T::kApplies, "", kInvokeCode},
    Rule{K::kTextEncoderOther, T::kDropsWithWarning, "Unexpected submodel name: text_encoders", kInvokeCode},
};
constexpr std::array kInvokeAiToolkit = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kBiasDelta, T::kDropsWithWarning, kInvokeUnexpected, kMeasured},
    Rule{K::kAlphaTensor, T::kRejectsFile, kInvokeGrouping, kInvokeData},
    Rule{K::kDoraColumn, T::kRejectsFile, kInvokeGrouping, kInvokeCode},
    Rule{K::kDoraRow, T::kRejectsFile, kInvokeGrouping, kInvokeCode},
    Rule{K::kDiff, T::kRejectsFile, kInvokeGrouping, kInvokeCode},
    Rule{K::kLokr, T::kApplies, "", kInvokeCode},
    Rule{K::kLoha, T::kApplies, "", kInvokeCode},
    Rule{K::kTextEncoderOther, T::kDropsWithWarning, "Unexpected submodel name: text_encoders", kInvokeCode},
};
// diffusers layout: the probe's detector wants every key to end in lora_A/lora_B (or lora.down/
// lora.up) and the query projections of block 0 (kLacksBlock0Queries rejects the rest).
constexpr std::array kInvokeDiffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kApplies, "", kInvokeData},
    Rule{K::kPartialAttention, T::kRejectsFile,
         "ValueError: Missing LoRA layer: '<layer>'. — a double block's q, k and v must all be present", kInvokeData, 1},
    Rule{K::kTopLevelModule, T::kApplies, "", kInvokeData},
    Rule{K::kGuidanceIn, T::kDropsSilently,
         "guidance_embedder.linear_1 and linear_2 are mapped to one module: linear_2 overwrites linear_1", kInvokeData},
    Rule{K::kFinalLinear, T::kApplies, "", kInvokeData},
    Rule{K::kFinalModulation, T::kRejectsFile,
         "AssertionError: — assert len(grouped_state_dict) == 0: norm_out.linear is not consumed", kInvokeData},
    Rule{K::kMetadataAlpha, T::kDropsSilently,
         "lora_adapter_metadata is not read: every module is applied at scale 1", kInvokeData},
    Rule{K::kAlphaTensor, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kBiasDelta, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kDoraColumn, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
    Rule{K::kDoraRow, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
    Rule{K::kLokr, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
    Rule{K::kLoha, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
    Rule{K::kDiff, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
    Rule{K::kTextEncoderClip, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kOtherDialect, T::kRejectsFile, kInvokeProbe, kPeers, 2},
};
// diffusers-old (lora.down/lora.up): the detector wants lora_A names for block 0; the probe's
// heuristics know neither the prefix nor the suffix (text-encoder keys pass them).
constexpr std::array kInvokeDiffusersOld = {
    Rule{K::kBlockModule, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kTopLevelModule, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kFinalLinear, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kFinalModulation, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kTextEncoderClip, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
};
constexpr std::array kInvokeOneTrainer = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeData},
    Rule{K::kTextMlp, T::kRejectsFile,
         "ValueError: Key <key> does not match parsing tree <tree>. — the underscore parser takes ff_context_net for "
         "ff + context_net",
         kInvokeData, 1},
    Rule{K::kAlphaTensor, T::kApplies, "", kInvokeData},
    Rule{K::kTopLevelModule, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kFinalLinear, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kFinalModulation, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kDoraColumn, T::kApplies, "", kInvokeCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kInvokeData},
    Rule{K::kTextEncoderT5Te2, T::kApplies, "", kInvokeCode},
};
constexpr std::array kInvokeOneTrainerBfl = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeData},
    Rule{K::kAlphaTensor, T::kApplies, "", kInvokeData},
    Rule{K::kTextEncoderClip, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
    Rule{K::kTopLevelModule, T::kApplies, "", kInvokeData},
    Rule{K::kFinalLinear, T::kApplies, "", kInvokeData},
    Rule{K::kFinalModulation, T::kApplies, "", kInvokeData},
    Rule{K::kPartialAttention, T::kDropsSilently, "parts are placed on the wrong rows when split indices are absent",
         kPeers},
    Rule{K::kPartialMlp, T::kApplies, "", kInvokeData},
};
constexpr std::array kInvokeXlabs = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeData},
    Rule{K::kTextEncoderClip, T::kRejectsFile, kInvokeProbe, kInvokeCode, 2},
};
constexpr std::array kInvokeXlabsSingle = {
    Rule{K::kBlockModule, T::kRejectsFile, kInvokeHeuristics, kInvokeData, 1},
    Rule{K::kTextEncoderClip, T::kRejectsFile, kInvokeProbe, kInvokeData, 2},
};
constexpr std::array kInvokeStyles = {
    StyleSupport{kAiToolkit, kNoBlockModules, Recognition::kRejects, kInvokeProbe, {}, kInvokeData},
    StyleSupport{kComfy, kNoBlockModules, Recognition::kRejects, kInvokeHeuristics, {}, kInvokeData},
    StyleSupport{kKohya, "", Recognition::kReads, "", kInvokeKohya, kMeasured},
    StyleSupport{kComfy, kForeignMetadata, Recognition::kReads, "", kInvokeComfyMetadata, kInvokeData},
    StyleSupport{kComfy, kTopLevelSingleSuffix, Recognition::kRejects, kInvokeUnpack, {}, kInvokeData},
    StyleSupport{kComfy, "", Recognition::kReads, "", kInvokeComfy, kMeasured},
    StyleSupport{kAiToolkit, kForeignMetadata, Recognition::kReads, "", kInvokeBflPrefixMetadata, kInvokeData},
    StyleSupport{kAiToolkit, kTopLevelSingleSuffix, Recognition::kRejects, kInvokeUnpack, {}, kInvokeData},
    StyleSupport{kAiToolkit, "", Recognition::kReads, "", kInvokeAiToolkit, kMeasured},
    StyleSupport{kBareBfl, "", Recognition::kRejects, kInvokeProbe, {}, kInvokeData},
    StyleSupport{kDiffusersOld, "", Recognition::kReads, "", kInvokeDiffusersOld, kInvokeData},
    StyleSupport{kDiffusersOrFal, kLacksBlock0Queries, Recognition::kRejects, kInvokeProbe, {}, kInvokeData},
    StyleSupport{kDiffusersOrFal, "", Recognition::kReads, "", kInvokeDiffusers, kMeasured},
    StyleSupport{kOneTrainer, "", Recognition::kReads, "", kInvokeOneTrainer, kInvokeData},
    StyleSupport{kOneTrainerBfl, kNoBlockModules, Recognition::kRejects, kInvokeHeuristics, {}, kInvokeData},
    StyleSupport{kOneTrainerBfl, "", Recognition::kReads, "", kInvokeOneTrainerBfl, kInvokeData},
    StyleSupport{kXlabs, kHasSingleBlocks, Recognition::kReads, "", kInvokeXlabsSingle, kInvokeData},
    StyleSupport{kXlabs, "", Recognition::kReads, "", kInvokeXlabs, kInvokeData},
    StyleSupport{kLycoris, "", Recognition::kRejects, kInvokeProbe, {}, kInvokeCode},
};
constexpr std::array kInvokeForms = {Style::kPeft};
// FLUX.2 (data/loaders/invokeai-8e71a8a51939-flux2.json): the probe must take the file for a FLUX.2
// LoRA (base flux2; the FLUX.2 graphs take no other), then the loader's FLUX.2 branch and what the
// FLUX.2 denoise invocation applies (BFL keys renamed to Flux2Transformer2DModel modules).
constexpr std::string_view kInvokeF2Data = "measured: data/loaders/invokeai-8e71a8a51939-flux2.json";
constexpr std::string_view kInvokeF2NoModule =
    "Failed to find module for LoRA layer key: <key> — the FLUX.2 BFL-to-diffusers renames have no row for it "
    "(INV-4): not applied";
constexpr std::array kInvokeF2AiToolkit = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeF2Data},
    Rule{K::kTopLevelModule, T::kApplies, "", kInvokeF2Data},
    Rule{K::kFinalLinear, T::kApplies, "", kInvokeF2Data},
    Rule{K::kGuidanceIn, T::kDropsWithWarning, kInvokeF2NoModule, kInvokeF2Data},
    Rule{K::kFinalModulation, T::kDropsWithWarning, kInvokeF2NoModule, kInvokeF2Data},
    Rule{K::kAlphaTensor, T::kRejectsFile, kInvokeGrouping, kInvokeF2Data},
};
constexpr std::array kInvokeF2Kohya = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeF2Data},
    Rule{K::kAlphaTensor, T::kApplies, "", kInvokeF2Data},
    Rule{K::kTopLevelModule, T::kRejectsFile, kInvokeProbe, kInvokeF2Data, 2},
};
// diffusers names (transformer. or base_model.model.): the probe's FLUX.2 diffusers detector wants
// every key to be a LoRA weight and a FLUX.2-only module (to_qkv_mlp_proj, ff.linear_in or
// ff_context.linear_in); a file whose block deltas are all attention has none (code reading).
constexpr std::array kInvokeF2Diffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kInvokeF2Data},
    Rule{K::kPartialAttention, T::kApplies, "", kInvokeF2Data},
    Rule{K::kTopLevelModule, T::kApplies, "", kInvokeF2Data},
    Rule{K::kFinalLinear, T::kApplies, "", kInvokeF2Data},
    Rule{K::kFinalModulation, T::kApplies, "", kInvokeF2Data},
    Rule{K::kMetadataAlpha, T::kDropsSilently,
         "lora_adapter_metadata is not read: every module is applied at scale 1", kInvokeF2Data},
    Rule{K::kAlphaTensor, T::kRejectsFile, kInvokeProbe, kInvokeF2Data, 2},
};
constexpr std::array kInvokeF2Styles = {
    StyleSupport{kAiToolkit, kNoBlockModules, Recognition::kRejects, kInvokeProbe, {}, kInvokeF2Data},
    StyleSupport{kAiToolkit, kTopLevelSingleSuffix, Recognition::kRejects, kInvokeUnpack, {}, kInvokeF2Data},
    StyleSupport{kAiToolkit, kForeignMetadata, Recognition::kReads, "", kInvokeF2AiToolkit, kInvokeF2Data},
    StyleSupport{kKohya, kNoBlockModules, Recognition::kRejects, kInvokeProbe, {}, kInvokeF2Data},
    StyleSupport{kKohya, "", Recognition::kReads, "", kInvokeF2Kohya, kInvokeF2Data},
    StyleSupport{kComfy, "", Recognition::kRejects, kInvokeHeuristics, {}, kInvokeF2Data},
    StyleSupport{kBareBfl, "", Recognition::kRejects, kInvokeProbe, {}, kInvokeF2Data},
    StyleSupport{kDiffusersOrFal, kNoBlockModules, Recognition::kRejects, kInvokeProbe, {}, kInvokeF2Data},
    StyleSupport{kDiffusersOrFal, kNonAttentionBlockModules, Recognition::kReads, "", kInvokeF2Diffusers, kInvokeF2Data},
    StyleSupport{kDiffusersOrFal, "", Recognition::kRejects, kInvokeProbe, {}, kInvokeCode},
};

// ---- InvokeAI 5.1.1 ----
constexpr std::string_view kInvoke51Unknown = "Unknown LoRA type: <path> (the file is not recognised as FLUX; install fails)";
constexpr std::string_view kInvoke51Unexpected =
    "Unexpected keys found in LoRA/LyCORIS layer, model might work incorrectly! (the key is not applied)";
constexpr std::array kInvoke51Kohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kFinalLinear, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kFinalModulation, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kTextEncoderClip, T::kApplies, "", kInvoke51Code},
    Rule{K::kTextEncoderT5Te2, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kTextEncoderT5Te3, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kBiasDelta, T::kDropsWithWarning, kInvoke51Unexpected, kInvoke51Code},
    Rule{K::kDoraColumn, T::kDropsWithWarning, kInvoke51Unexpected, kInvoke51Code},
    Rule{K::kDoraRow, T::kDropsWithWarning, kInvoke51Unexpected, kInvoke51Code},
    Rule{K::kLokr, T::kApplies, "", kInvoke51Code},
    Rule{K::kLoha, T::kApplies, "", kInvoke51Code},
    Rule{K::kDiff, T::kApplies, "", kInvoke51Code},
};
constexpr std::string_view kInvoke51Assert =
    "AssertionError (assert all(keys_present) or not any(keys_present): q, k, v (and a single block's proj_mlp) "
    "must all be present or all absent)";
constexpr std::array kInvoke51Diffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kRejectsFile, kInvoke51Assert, kMeasured},
    Rule{K::kPartialAttention, T::kRejectsFile, kInvoke51Assert, kInvoke51Code},
    Rule{K::kTopLevelModule, T::kApplies, "", kInvoke51Code},
    Rule{K::kGuidanceIn, T::kDropsSilently,
         "guidance_embedder.linear_1 and linear_2 are mapped to one module: linear_2 overwrites linear_1",
         kInvoke51Code},
    Rule{K::kFinalLinear, T::kApplies, "", kInvoke51Code},
    Rule{K::kFinalModulation, T::kRejectsFile, "AssertionError (assert len(grouped_state_dict) == 0)", kInvoke51Code},
    Rule{K::kAlphaTensor, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kBiasDelta, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kDoraColumn, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
    Rule{K::kDoraRow, T::kRejectsFile, kInvoke51Unknown, kInvoke51Code},
};
constexpr std::array kInvoke51Styles = {
    StyleSupport{kKohya, "", Recognition::kReads, "", kInvoke51Kohya, kMeasured},
    StyleSupport{kDiffusers, "", Recognition::kReads, "", kInvoke51Diffusers, kMeasured},
};
constexpr std::array kInvoke51Forms = {Style::kKohya};

// ---- ComfyUI ----
// Measured (data/loaders/comfyui-a125cd84b054.json): comfy.sd.load_lora_for_models and the
// model patcher on a stand-in FLUX.1 tree.
constexpr std::string_view kComfyData = "measured: data/loaders/comfyui-a125cd84b054.json";
constexpr std::string_view kComfyNotLoaded = "lora key not loaded: <key>";
constexpr std::string_view kComfyNoMetadata = "the file's metadata is not read: modules without .alpha get scale 1";
constexpr std::array kComfyKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kBiasDelta, T::kApplies, "", kMeasured},
    Rule{K::kDiff, T::kApplies, "", kRules},
    Rule{K::kDoraColumn, T::kApplies, "", kComfyCode},
    Rule{K::kLokr, T::kApplies, "", kComfyCode},
    Rule{K::kLoha, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kComfyData},
    Rule{K::kTextEncoderT5Te2, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderT5Te3, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderOther, T::kApplies, "", kComfyCode},
    Rule{K::kMetadataAlpha, T::kDropsSilently, kComfyNoMetadata, kComfyCode},
};
constexpr std::array kComfyAiToolkit = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kBiasDelta, T::kDropsWithWarning, kComfyNotLoaded, kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kComfyData},
    Rule{K::kDoraColumn, T::kApplies, "", kComfyCode},
    Rule{K::kDoraRow, T::kDropsWithWarning, kComfyNotLoaded, kComfyCode},
    Rule{K::kLokr, T::kApplies, "", kComfyCode},
    Rule{K::kLoha, T::kApplies, "", kComfyCode},
    Rule{K::kDiff, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderOther, T::kApplies, "", kComfyCode},
    Rule{K::kMetadataAlpha, T::kDropsSilently, kComfyNoMetadata, kComfyCode},
    Rule{K::kOtherDialect, T::kApplies, "", kComfyData},
    Rule{K::kTextEncoderClip, T::kApplies, "", kComfyData},
};
constexpr std::array kComfyDiffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kApplies, "", kComfyData},
    Rule{K::kPartialAttention, T::kApplies, "", kComfyData},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kComfyData},
    Rule{K::kMetadataAlpha, T::kDropsSilently, kComfyNoMetadata, kComfyData},
    Rule{K::kBiasDelta, T::kDropsWithWarning, "lora key not loaded (lora_B.bias), or NOT LOADED ().bias (.diff_b on a split part)",
         kComfyData},
    Rule{K::kDoraColumn, T::kApplies, "", kComfyCode},
    Rule{K::kDoraRow, T::kDropsWithWarning, kComfyNotLoaded, kComfyCode},
    Rule{K::kLokr, T::kApplies, "", kComfyCode},
    Rule{K::kLoha, T::kApplies, "", kComfyCode},
    Rule{K::kDiff, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kComfyData},
};
constexpr std::array kComfyOneTrainer = {
    Rule{K::kBlockModule, T::kApplies, "", kComfyData},     Rule{K::kTopLevelModule, T::kApplies, "", kComfyData},
    Rule{K::kFinalLinear, T::kApplies, "", kComfyData},     Rule{K::kFinalModulation, T::kApplies, "", kComfyData},
    Rule{K::kPartialMlp, T::kApplies, "", kComfyData},      Rule{K::kPartialAttention, T::kApplies, "", kComfyData},
    Rule{K::kAlphaTensor, T::kApplies, "", kComfyData},     Rule{K::kDoraColumn, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kComfyData}, Rule{K::kTextEncoderT5Te2, T::kApplies, "", kComfyCode},
    // .diff_b of a whole target is applied; of a q/k/v/proj_mlp part or of norm_out (offset or
    // halves swapped) it is not.
    Rule{K::kBiasDelta, T::kApplies, "", kComfyData},
    Rule{K::kBiasOnPart, T::kDropsWithWarning, "NOT LOADED ().bias", kComfyData},
};
constexpr std::array kComfyLycoris = {
    Rule{K::kBlockModule, T::kApplies, "", kComfyCode},     Rule{K::kTopLevelModule, T::kApplies, "", kComfyCode},
    Rule{K::kFinalLinear, T::kApplies, "", kComfyCode},     Rule{K::kFinalModulation, T::kApplies, "", kComfyCode},
    Rule{K::kPartialMlp, T::kApplies, "", kComfyCode},      Rule{K::kPartialAttention, T::kApplies, "", kComfyCode},
    Rule{K::kAlphaTensor, T::kApplies, "", kComfyCode},     Rule{K::kDoraColumn, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kComfyCode}, Rule{K::kTextEncoderT5Te2, T::kApplies, "", kComfyCode},
};
// Key styles ComfyUI maps to no module: every delta is left out, text-encoder tensors are applied.
constexpr std::array kComfyNothingMapped = {
    Rule{K::kBlockModule, T::kDropsWithWarning, kComfyNotLoaded, kComfyData},
    Rule{K::kTopLevelModule, T::kDropsWithWarning, kComfyNotLoaded, kComfyData},
    Rule{K::kFinalLinear, T::kDropsWithWarning, kComfyNotLoaded, kComfyData},
    Rule{K::kFinalModulation, T::kDropsWithWarning, kComfyNotLoaded, kComfyData},
    Rule{K::kAlphaTensor, T::kDropsWithWarning, kComfyNotLoaded, kComfyData},
    Rule{K::kBiasDelta, T::kDropsWithWarning, kComfyNotLoaded, kComfyData},
    Rule{K::kDoraColumn, T::kDropsWithWarning, kComfyNotLoaded, kComfyCode},
    Rule{K::kDoraRow, T::kDropsWithWarning, kComfyNotLoaded, kComfyCode},
    Rule{K::kLokr, T::kDropsWithWarning, kComfyNotLoaded, kComfyCode},
    Rule{K::kLoha, T::kDropsWithWarning, kComfyNotLoaded, kComfyCode},
    Rule{K::kDiff, T::kDropsWithWarning, kComfyNotLoaded, kComfyCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kComfyData},
    Rule{K::kTextEncoderT5Te2, T::kApplies, "", kComfyCode},
    Rule{K::kTextEncoderT5Te3, T::kApplies, "", kComfyCode},
};
constexpr std::array<Dialect, 5> kComfyNothingStyles = {D::kBfl, D::kFalKontext, D::kFal, D::kOneTrainerBfl, D::kXlabs};
constexpr std::array kComfyStyles = {
    StyleSupport{kKohyaOrComfy, "", Recognition::kReads, "", kComfyKohya, kMeasured},
    StyleSupport{kAiToolkit, "", Recognition::kReads, "", kComfyAiToolkit, kMeasured},
    // XLabs files holding the last blocks' q/k/v go through ComfyUI's XLabs/USO key conversion
    // (its detection keys on single block 37 and double block 18): not measured.
    StyleSupport{kXlabs, kLastBlocksQkv, Recognition::kReads, "", {}, kComfyCode},
    StyleSupport{kComfyNothingStyles, "", Recognition::kReads, "", kComfyNothingMapped, kComfyData},
    StyleSupport{kDiffusersAndOld, "", Recognition::kReads, "", kComfyDiffusers, kComfyData},
    StyleSupport{kOneTrainer, "", Recognition::kReads, "", kComfyOneTrainer, kComfyData},
    StyleSupport{kLycoris, "", Recognition::kReads, "", kComfyLycoris, kComfyCode},
};
constexpr std::array kComfyForms = {Style::kKohya, Style::kComfy};

// ---- diffusers ----
constexpr std::string_view kDiffusersKohyaTop =
    "written without the transformer. prefix by the kohya converter, then filtered out by load_lora_weights "
    "(no warning)";
constexpr std::string_view kDiffusersIncompatible = "ValueError: Incompatible keys detected: <keys>";
constexpr std::string_view kDiffusersNoDora =
    "It seems like you are using a DoRA checkpoint that is not compatible in Diffusers at the moment (dora_scale "
    "keys are filtered out)";
constexpr std::array kDiffusersKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kDropsSilently, kDiffusersKohyaTop, kMeasured},
    Rule{K::kFinalLinear, T::kDropsSilently, kDiffusersKohyaTop, kMeasured},
    Rule{K::kFinalModulation, T::kDropsSilently, kDiffusersKohyaTop, kMeasured},
    Rule{K::kBiasDelta, T::kDropsSilently, ".diff_b keys are filtered out (logged at info level only)", kMeasured},
    Rule{K::kDoraColumn, T::kDropsWithWarning, kDiffusersNoDora, kDiffusersCode},
    Rule{K::kDoraRow, T::kDropsWithWarning, kDiffusersNoDora, kDiffusersCode},
    Rule{K::kLokr, T::kRejectsFile, kDiffusersIncompatible, kDiffusersCode},
    Rule{K::kLoha, T::kRejectsFile, kDiffusersIncompatible, kDiffusersCode},
    Rule{K::kDiff, T::kRejectsFile, kDiffusersIncompatible, kDiffusersCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kDiffusersCode},
    Rule{K::kTextEncoderT5Te2, T::kDropsWithWarning, "Unsupported keys for ai-toolkit", kDiffusersCode},
    Rule{K::kTextEncoderT5Te3, T::kDropsWithWarning, "Unsupported keys for ai-toolkit", kDiffusersCode},
};
constexpr std::string_view kDiffusersData = "measured: data/loaders/diffusers-58eb52c0803e.json";
constexpr std::array kDiffusersNative = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kApplies, "", kMeasured},
    Rule{K::kPartialAttention, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kMetadataAlpha, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kDiffusersData},
    Rule{K::kBiasDelta, T::kApplies, "", kDiffusersData},
    Rule{K::kDoraRow, T::kApplies, "", kDiffusersCode},
    Rule{K::kDoraColumn, T::kDropsWithWarning, kDiffusersNoDora, kDiffusersCode},
    Rule{K::kTextEncoderClip, T::kDropsSilently,
         "not read: only text_encoder.* keys reach the text encoder of a diffusers-named file", kDiffusersData},
    Rule{K::kTextEncoderClipDiffusers, T::kApplies, "", kDiffusersCode},
    Rule{K::kAlphaPatternShadowed, T::kDropsSilently,
         "applied with the top-level proj_out's alpha: PEFT's alpha_pattern matches \"proj_out\" as a suffix of its name",
         kDiffusersData},
};
constexpr std::array kDiffusersXlabs = {
    Rule{K::kBlockModule, T::kApplies, "", kDiffusersData},
    Rule{K::kPartialMlp, T::kApplies, "", kDiffusersData},
};
constexpr std::string_view kDiffusersNoPrefix =
    "No LoRA keys associated to FluxTransformer2DModel found with the prefix='transformer': nothing is applied";
constexpr std::string_view kDiffusersTeInfer =
    "ValueError: Could not automatically infer state dict type — the kohya text-encoder keys, once converted, hold no "
    "out_proj or MLP module by which diffusers tells their style";
constexpr std::string_view kDiffusersOneTrainer =
    "KeyError: '<key>' — diffusers' OneTrainer route needs every module's .alpha and maps only the blocks' attention "
    "modules";
// OneTrainer files holding attention block modules only: each module's .alpha is read.
constexpr std::array kDiffusersOneTrainerAttention = {
    Rule{K::kMissingAlpha, T::kRejectsFile, "KeyError: '<module>.alpha' — diffusers' OneTrainer route reads every module's .alpha",
         kDiffusersCode, 2},
    Rule{K::kMissingAlphaTop, T::kRejectsFile,
         "KeyError: '<module>.alpha' — diffusers' OneTrainer route reads every module's .alpha", kDiffusersData, 2},
    Rule{K::kBlockModule, T::kApplies, "", kDiffusersCode},
    Rule{K::kTopLevelModule, T::kApplies, "", kDiffusersData},
    Rule{K::kFinalLinear, T::kApplies, "", kDiffusersData},
    Rule{K::kFinalModulation, T::kApplies, "", kDiffusersData},
    Rule{K::kAlphaTensor, T::kApplies, "", kDiffusersCode},
};
constexpr std::array kDiffusersStyles = {
    // A kohya text encoder makes any file a kohya file for diffusers (its keys end in lora_down).
    StyleSupport{kDiffusersTeStyles, kClipWithoutOutOrMlp, Recognition::kRejects, kDiffusersTeInfer, {}, kDiffusersData},
    StyleSupport{kKohyaOrComfy, "", Recognition::kReads, "", kDiffusersKohya, kMeasured},
    StyleSupport{kAiToolkit, kKohyaTextEncoder, Recognition::kRejects, kDiffusersIncompatible, {}, kDiffusersData},
    StyleSupport{kNotKohyaButTe, kKohyaTextEncoder, Recognition::kReads, "", {}, kDiffusersCode},  // not measured
    StyleSupport{kAiToolkit, "", Recognition::kIgnores, kDiffusersNoPrefix, {}, kMeasured},
    StyleSupport{kBareBfl, "", Recognition::kIgnores, kDiffusersNoPrefix, {}, kMeasured},
    StyleSupport{kDiffusersAndOld, "", Recognition::kReads, "", kDiffusersNative, kDiffusersData},
    StyleSupport{kXlabs, "", Recognition::kReads, "", kDiffusersXlabs, kDiffusersData},
    // The fal (Kontext) converter reads every module of all 19 double and 38 single blocks.
    StyleSupport{kFal, kNotEveryBlockModule, Recognition::kRejects,
                 "KeyError: '<key>' — diffusers' fal converter reads every module of every block", {}, kDiffusersData},
    StyleSupport{kOneTrainer, kNonAttentionBlockModules, Recognition::kRejects, kDiffusersOneTrainer, {}, kDiffusersData},
    StyleSupport{kOneTrainer, "", Recognition::kReads, "", kDiffusersOneTrainerAttention, kDiffusersData},
    // PEFT (emulated: the harness applies PEFT's LoRA semantics) finds none of the target modules.
    StyleSupport{kOneTrainerBfl, "", Recognition::kRejects,
                 "ValueError: Target modules [<…>] not found in the base model. Please check the target modules and try again.",
                 {}, kDiffusersData},
};
constexpr std::array kDiffusersForms = {Style::kDiffusers};

// ---- sd-scripts (networks/convert_flux_lora.py) ----
constexpr std::string_view kSdScriptsLeftOver = "Unsuppored keys for ai-toolkit (left out of the conversion)";
constexpr std::string_view kSdScriptsData = "measured: data/loaders/sd-scripts-48d368fa5577.json";
constexpr std::array kSdScriptsKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kMissingAlpha, T::kRejectsFile,
         "KeyError: '<module>.alpha' — convert_to_ai_toolkit reads every module's .alpha (sd-scripts always writes it)",
         kSdScriptsData},
    Rule{K::kTextEncoderClip, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsData},
    Rule{K::kTextEncoderT5Te2, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsCode},
    Rule{K::kTextEncoderT5Te3, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsCode},
    Rule{K::kTopLevelModule, T::kDropsWithWarning, kSdScriptsLeftOver, kMeasured},
    Rule{K::kFinalLinear, T::kDropsWithWarning, kSdScriptsLeftOver, kMeasured},
    Rule{K::kFinalModulation, T::kDropsWithWarning, kSdScriptsLeftOver, kMeasured},
    Rule{K::kBiasDelta, T::kDropsWithWarning, kSdScriptsLeftOver, kMeasured},
    Rule{K::kDoraColumn, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsCode},
    Rule{K::kDoraRow, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsCode},
    Rule{K::kLokr, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsCode},
    Rule{K::kLoha, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsCode},
    Rule{K::kDiff, T::kDropsWithWarning, kSdScriptsLeftOver, kSdScriptsCode},
};
constexpr std::array kSdScriptsStyles = {
    StyleSupport{kKohya, "", Recognition::kReads, "", kSdScriptsKohya, kMeasured},
    StyleSupport{kNotKohya, "", Recognition::kIgnores, "not read: the converter expects lora_unet_* keys", {}, kMeasured},
};
constexpr std::array kSdScriptsForms = {Style::kKohya};

// ---- Forge (its copy of an older ComfyUI LoRA loader) ----
constexpr std::string_view kForgeUnmatched = "[LORA] Loading <file> for KModel with unmatched keys [...]";
constexpr std::string_view kForgeNoMetadata = "the file's metadata is not read: modules without .alpha get scale 1";
constexpr std::array kForgeBfl = {
    Rule{K::kBlockModule, T::kApplies, "", kForgeCode},       Rule{K::kTopLevelModule, T::kApplies, "", kForgeCode},
    Rule{K::kFinalLinear, T::kApplies, "", kForgeCode},       Rule{K::kFinalModulation, T::kApplies, "", kForgeCode},
    Rule{K::kAlphaTensor, T::kApplies, "", kForgeCode},       Rule{K::kMetadataAlpha, T::kDropsSilently, kForgeNoMetadata, kForgeCode},
    Rule{K::kDoraColumn, T::kApplies, "", kForgeCode},        Rule{K::kLokr, T::kApplies, "", kForgeCode},
    Rule{K::kLoha, T::kApplies, "", kForgeCode},              Rule{K::kDiff, T::kApplies, "", kForgeCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kForgeCode},   Rule{K::kTextEncoderT5Te2, T::kApplies, "", kForgeCode},
    Rule{K::kTextEncoderT5Te3, T::kApplies, "", kForgeCode},
};
// In kohya/comfy files Forge reads .diff_b; in ai-toolkit files the bias is lora_B.bias, which it does not read.
constexpr std::array kForgeKohyaExtra = {
    Rule{K::kBiasDelta, T::kApplies, "", kForgeCode},
};
constexpr std::array kForgeKohya = {
    kForgeBfl[0], kForgeBfl[1], kForgeBfl[2],  kForgeBfl[3],  kForgeBfl[4],  kForgeBfl[5],       kForgeBfl[6],
    kForgeBfl[7], kForgeBfl[8], kForgeBfl[9],  kForgeBfl[10], kForgeBfl[11], kForgeBfl[12], kForgeKohyaExtra[0],
};
constexpr std::array kForgeAiToolkit = {
    kForgeBfl[0], kForgeBfl[1], kForgeBfl[2], kForgeBfl[3], kForgeBfl[4], kForgeBfl[5], kForgeBfl[6],
    kForgeBfl[7], kForgeBfl[8], kForgeBfl[9],
    Rule{K::kBiasDelta, T::kDropsWithWarning, kForgeUnmatched, kForgeCode},
    Rule{K::kDoraRow, T::kDropsWithWarning, kForgeUnmatched, kForgeCode},
};
constexpr std::array kForgeDiffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kForgeCode},
    Rule{K::kPartialMlp, T::kApplies, "", kForgeCode},
    Rule{K::kPartialAttention, T::kApplies, "", kForgeCode},
    Rule{K::kTopLevelModule, T::kApplies, "", kForgeCode},
    Rule{K::kFinalLinear, T::kApplies, "", kForgeCode},
    Rule{K::kFinalModulation, T::kApplies, "", kForgeCode},
    Rule{K::kAlphaTensor, T::kApplies, "", kForgeCode},
    Rule{K::kMetadataAlpha, T::kDropsSilently, kForgeNoMetadata, kForgeCode},
    Rule{K::kBiasDelta, T::kDropsWithWarning, kForgeUnmatched, kForgeCode},
    Rule{K::kDoraColumn, T::kApplies, "", kForgeCode},
    Rule{K::kDoraRow, T::kDropsWithWarning, kForgeUnmatched, kForgeCode},
    Rule{K::kLokr, T::kApplies, "", kForgeCode},
    Rule{K::kLoha, T::kApplies, "", kForgeCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kForgeCode},
};
constexpr std::array kForgeStyles = {
    StyleSupport{kKohyaOrComfy, "", Recognition::kReads, "", kForgeKohya, kForgeCode},
    StyleSupport{kAiToolkit, "", Recognition::kReads, "", kForgeAiToolkit, kForgeCode},
    StyleSupport{kDiffusers, "", Recognition::kReads, "", kForgeDiffusers, kForgeCode},
    StyleSupport{kOneTrainer, "", Recognition::kReads, "", kForgeDiffusers, kForgeCode},
    StyleSupport{kLycoris, "", Recognition::kReads, "", kForgeDiffusers, kForgeCode},
    StyleSupport{kUnmapped, "", Recognition::kIgnores, "not mapped: every key is left unread", {}, kForgeCode},
};
constexpr std::array kForgeForms = {Style::kKohya, Style::kComfy, Style::kPeft};

// ---- stable-diffusion.cpp ----
constexpr std::string_view kSdcppUnused = "not applied (only an 'unused lora tensor' line in at_runtime mode)";
constexpr std::string_view kSdcppKohyaTop =
    "the underscore-to-dot rule breaks img_in, txt_in, time_in, vector_in, guidance_in and final_layer names: no "
    "model tensor matches";
constexpr std::string_view kSdcppNoDora =
    "dora_scale / lora_magnitude_vector is never read: the LoRA is applied without its magnitude";
constexpr std::array kSdcppKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kSdcppCode},
    Rule{K::kTopLevelModule, T::kDropsSilently, kSdcppKohyaTop, kSdcppCode},
    Rule{K::kFinalLinear, T::kDropsSilently, kSdcppKohyaTop, kSdcppCode},
    Rule{K::kFinalModulation, T::kDropsSilently, kSdcppKohyaTop, kSdcppCode},
    Rule{K::kAlphaTensor, T::kApplies, "", kSdcppCode},
    Rule{K::kMetadataAlpha, T::kDropsSilently, "metadata alpha is not read: scale 1", kSdcppCode},
    Rule{K::kBiasDelta, T::kApplies, "", kSdcppCode},
    Rule{K::kDoraColumn, T::kDropsSilently, kSdcppNoDora, kSdcppCode},
    Rule{K::kDoraRow, T::kDropsSilently, kSdcppNoDora, kSdcppCode},
    Rule{K::kLokr, T::kApplies, "", kSdcppCode},
    Rule{K::kLoha, T::kApplies, "", kSdcppCode},
    Rule{K::kDiff, T::kApplies, "", kSdcppCode},
    Rule{K::kTextEncoderClip, T::kApplies, "", kSdcppCode},
    Rule{K::kTextEncoderT5Te2, T::kDropsSilently, kSdcppUnused, kSdcppCode},
    Rule{K::kTextEncoderT5Te3, T::kApplies, "", kSdcppCode},
};
constexpr std::array kSdcppComfy = {
    Rule{K::kBlockModule, T::kApplies, "", kSdcppCode},
    Rule{K::kTopLevelModule, T::kApplies, "", kSdcppCode},
    Rule{K::kFinalLinear, T::kApplies, "", kSdcppCode},
    Rule{K::kFinalModulation, T::kApplies, "", kSdcppCode},
    Rule{K::kAlphaTensor, T::kApplies, "", kSdcppCode},
    Rule{K::kMetadataAlpha, T::kDropsSilently, "metadata alpha is not read: scale 1", kSdcppCode},
    Rule{K::kBiasDelta, T::kApplies, "", kSdcppCode},  // .diff_b; lora_B.bias is ai-toolkit's (below)
    Rule{K::kDoraColumn, T::kDropsSilently, kSdcppNoDora, kSdcppCode},
    Rule{K::kDoraRow, T::kDropsSilently, kSdcppNoDora, kSdcppCode},
    Rule{K::kLokr, T::kApplies, "", kSdcppCode},
    Rule{K::kLoha, T::kApplies, "", kSdcppCode},
    Rule{K::kDiff, T::kApplies, "", kSdcppCode},
};
constexpr std::array kSdcppAiToolkit = {
    kSdcppComfy[0], kSdcppComfy[1], kSdcppComfy[2], kSdcppComfy[3],  kSdcppComfy[4],  kSdcppComfy[5],
    Rule{K::kBiasDelta, T::kDropsSilently, "lora_B.bias is not converted: not applied", kSdcppCode},
    kSdcppComfy[7], kSdcppComfy[8], kSdcppComfy[9], kSdcppComfy[10], kSdcppComfy[11],
};
constexpr std::array kSdcppDiffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kSdcppCode},
    Rule{K::kTopLevelModule, T::kApplies, "", kSdcppCode},
    Rule{K::kFinalLinear, T::kApplies, "", kSdcppCode},
    Rule{K::kFinalModulation, T::kDropsSilently,
         "norm_out.linear is mapped without the half swap: shift and scale land in the wrong halves (no message)",
         kSdcppCode},
    Rule{K::kPartialAttention, T::kDropsSilently,
         "split parts are joined in index order up to the first missing one: parts after a gap are not applied",
         kSdcppCode},
    Rule{K::kPartialMlp, T::kUnknown,
         "zero-padded in immediate mode; the whole linear1 delta skipped with a warning in at_runtime mode", kSdcppCode},
    Rule{K::kAlphaTensor, T::kApplies, "", kSdcppCode},
    Rule{K::kMetadataAlpha, T::kDropsSilently, "metadata alpha is not read: scale 1", kSdcppCode},
    Rule{K::kBiasDelta, T::kDropsSilently, "lora_B.bias is not converted: not applied", kSdcppCode},
    Rule{K::kDoraColumn, T::kDropsSilently, kSdcppNoDora, kSdcppCode},
    Rule{K::kDoraRow, T::kDropsSilently, kSdcppNoDora, kSdcppCode},
    Rule{K::kLokr, T::kApplies, "", kSdcppCode},
    Rule{K::kLoha, T::kApplies, "", kSdcppCode},
    Rule{K::kDiff, T::kApplies, "", kSdcppCode},
    Rule{K::kTextEncoderClip, T::kDropsSilently, "text_encoder.* lands under cond_stage_model.: unused", kSdcppCode},
};
constexpr std::array kSdcppStyles = {
    StyleSupport{kKohya, "", Recognition::kReads, "", kSdcppKohya, kSdcppCode},
    StyleSupport{kComfy, "", Recognition::kReads, "", kSdcppComfy, kSdcppCode},
    StyleSupport{kAiToolkit, "", Recognition::kReads, "", kSdcppAiToolkit, kSdcppCode},
    StyleSupport{kDiffusers, "", Recognition::kReads, "", kSdcppDiffusers, kSdcppCode},
    StyleSupport{kLycoris, "", Recognition::kReads, "", kSdcppDiffusers, kSdcppCode},
    StyleSupport{kSdcppUnmapped, "", Recognition::kIgnores, "not recognised: no model tensor matches", {}, kSdcppCode},
};
constexpr std::array kSdcppForms = {Style::kComfy, Style::kPeft};

// ---- FLUX.2: diffusers and ComfyUI (measured, tools/loader-lab LV_LAB_FAMILY=flux2; InvokeAI's are
// beside its FLUX.1 entries). Rules still sourced to kFlux2Doc are code reading
// (docs/formats.md#flux2-peer-failures). ----
constexpr std::string_view kFlux2Doc = "code: docs/formats.md#flux2-peer-failures";
constexpr std::array<Dialect, 2> kAiToolkitOrFal = {D::kAiToolkit, D::kFalKontext};

// diffusers, measured (data/loaders/diffusers-58eb52c0803e-flux2.json): Flux2LoraLoaderMixin on a
// Flux2Transformer2DModel stand-in of each family (dev, klein 9B, klein 4B).
constexpr std::string_view kDiffusersF2Data = "measured: data/loaders/diffusers-58eb52c0803e-flux2.json";
constexpr std::string_view kDiffusersF2LeftOver =
    "ValueError: `original_state_dict` should be empty at this point but has original_state_dict.keys()=dict_keys("
    "[<keys>]). — the FLUX.2 non-diffusers converter leaves what it has no row for (DF-2)";
constexpr std::string_view kDiffusersF2NotLora =
    "ValueError: Invalid LoRA checkpoint. Make sure all LoRA param names contain `'lora'` substring. — .alpha keys "
    "reach load_lora_weights unconverted";
constexpr std::array kDiffusersF2NonDiffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kTopLevelModule, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kFinalLinear, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kFinalModulation, T::kDropsSilently,
         "renamed to norm_out.linear without swapping its halves (DF-1): shift and scale are exchanged", kDiffusersF2Data},
    Rule{K::kAlphaTensor, T::kRejectsFile, kDiffusersF2LeftOver, kDiffusersF2Data},
    Rule{K::kNormScale, T::kRejectsFile, kDiffusersF2LeftOver, kFlux2Doc},
};
constexpr std::string_view kDiffusersF2Df4 = "not converted by the kohya converter, logged as unsupported (DF-4)";
constexpr std::array kDiffusersF2Kohya = {
    Rule{K::kBlockModule, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kAlphaTensor, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kTopLevelModule, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kFinalLinear, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kGuidanceIn, T::kDropsWithWarning, kDiffusersF2Df4, kDiffusersF2Data},
    Rule{K::kSharedModulation, T::kDropsWithWarning, kDiffusersF2Df4, kDiffusersF2Data},
    Rule{K::kFinalModulation, T::kDropsWithWarning, kDiffusersF2Df4, kDiffusersF2Data},
};
constexpr std::array kDiffusersF2Native = {
    Rule{K::kBlockModule, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kTopLevelModule, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kFinalLinear, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kFinalModulation, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kPartialAttention, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kMetadataAlpha, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kAlphaTensor, T::kRejectsFile, kDiffusersF2NotLora, kDiffusersF2Data},
};
// fal (diffusers names under base_model.model.): the prefix is rewritten to diffusion_model. and the
// non-diffusers converter runs; it passes block keys already in diffusers naming through, but has
// no row for diffusers-named top-level modules.
constexpr std::array kDiffusersF2Fal = {
    Rule{K::kBlockModule, T::kApplies, "", kDiffusersF2Data},
    Rule{K::kTopLevelModule, T::kRejectsFile, kDiffusersF2LeftOver, kDiffusersF2Data, 1},
    Rule{K::kFinalLinear, T::kRejectsFile, kDiffusersF2LeftOver, kDiffusersF2Data, 1},
    Rule{K::kFinalModulation, T::kRejectsFile, kDiffusersF2LeftOver, kDiffusersF2Data, 1},
    Rule{K::kAlphaTensor, T::kRejectsFile, kDiffusersF2NotLora, kDiffusersF2Data},
};
// Bare BFL names: neither prefix the mixin converts, and no transformer. prefix for the adapter.
constexpr std::string_view kDiffusersF2NoPrefix =
    "No LoRA keys associated to Flux2Transformer2DModel found with the prefix='transformer': nothing is applied";
constexpr std::array kDiffusersF2Bare = {
    Rule{K::kBlockModule, T::kDropsWithWarning, kDiffusersF2NoPrefix, kDiffusersF2Data},
    Rule{K::kTopLevelModule, T::kDropsWithWarning, kDiffusersF2NoPrefix, kDiffusersF2Data},
    Rule{K::kFinalLinear, T::kDropsWithWarning, kDiffusersF2NoPrefix, kDiffusersF2Data},
    Rule{K::kFinalModulation, T::kDropsWithWarning, kDiffusersF2NoPrefix, kDiffusersF2Data},
    Rule{K::kAlphaTensor, T::kRejectsFile, kDiffusersF2NotLora, kDiffusersF2Data},
};
constexpr std::array kDiffusersF2Styles = {
    StyleSupport{kAiToolkitOrFal, "", Recognition::kReads, "", kDiffusersF2NonDiffusers, kDiffusersF2Data},
    StyleSupport{kKohya, "", Recognition::kReads, "", kDiffusersF2Kohya, kDiffusersF2Data},
    StyleSupport{kComfy, "", Recognition::kIgnores,
                 "every .lora_down.weight file goes to the kohya converter, which reads only lora_unet_* keys: "
                 "Unsupported keys (DF-3), nothing applied",
                 {}, kDiffusersF2Data},
    StyleSupport{kDiffusers, "", Recognition::kReads, "", kDiffusersF2Native, kDiffusersF2Data},
    StyleSupport{kFal, "", Recognition::kReads, "", kDiffusersF2Fal, kDiffusersF2Data},
    StyleSupport{kBareBfl, "", Recognition::kReads, "", kDiffusersF2Bare, kDiffusersF2Data},
};
// ComfyUI a125cd84 predates FLUX.2 (measured, data/loaders/comfyui-a125cd84b054-flux2.json): the
// steps of comfy.sd.load_diffusion_model_state_dict on a FLUX.2 stand-in of each family detect
// FLUX.1 (Flux for dev, FluxSchnell for klein: no vector_in, no guidance_in) and fail to build the
// model, so no FLUX.2 LoRA reaches the LoRA code. (What later ComfyUI commits do with FLUX.2 keys
// is code reading only: docs/formats.md#flux2-peer-failures, CF-1.)
constexpr std::array<Dialect, 6> kFlux2Styles = {D::kKohya, D::kComfy, D::kAiToolkit, D::kBfl, D::kDiffusers, D::kFal};
constexpr std::array kComfyF2Styles = {
    StyleSupport{kFlux2Styles, "", Recognition::kRejects,
                 "TypeError: FluxParams.__init__() missing 1 required positional argument: 'vec_in_dim' — ComfyUI "
                 "a125cd84 takes a FLUX.2 checkpoint for FLUX.1 and cannot build the model: no FLUX.2 LoRA applies",
                 {}, "measured: data/loaders/comfyui-a125cd84b054-flux2.json"},
};

constexpr std::array kProfiles = {
    Profile{"invokeai", "InvokeAI (current)", "invoke-ai/InvokeAI 8e71a8a5 (2026-08)",
            "data/loaders/invokeai-8e71a8a51939.json, data/loaders/invokeai-8e71a8a51939-flux2.json", {kInvokeStyles, kInvokeF2Styles}, kInvokeForms,
            "reads diffusion_model. + lora_A/lora_B (no .alpha) completely, top-level modules included", -1, ""},
    Profile{"invokeai-5.1", "InvokeAI 5.1.x", "invoke-ai/InvokeAI v5.1.1 (5806a4bc)", "", {kInvoke51Styles, {}}, kInvoke51Forms,
            "the version of the proj_mlp AssertionError; only block modules in kohya files load", -1, ""},
    Profile{"comfyui", "ComfyUI", "Comfy-Org/ComfyUI a125cd84 (2025-10)",
            "data/loaders/comfyui-a125cd84b054.json, data/loaders/comfyui-a125cd84b054-flux2.json", {kComfyStyles, kComfyF2Styles}, kComfyForms, "", -1, ""},
    Profile{"diffusers", "diffusers", "huggingface/diffusers 58eb52c0 (2026-08)",
            "data/loaders/diffusers-58eb52c0803e.json, data/loaders/diffusers-58eb52c0803e-flux2.json", {kDiffusersStyles, kDiffusersF2Styles}, kDiffusersForms,
            "", -1, ""},
    Profile{"sd-scripts", "sd-scripts", "kohya-ss/sd-scripts 48d368fa (2026-02)", "data/loaders/sd-scripts-48d368fa5577.json", {kSdScriptsStyles, {}}, kSdScriptsForms,
            "networks/convert_flux_lora.py", -1, ""},
    Profile{"forge", "Forge", "lllyasviel/stable-diffusion-webui-forge dfdcbab6 (2025-06, code reading only)", "",
            {kForgeStyles, {}}, kForgeForms, "facts from its code, not measured", 12,
            "[LORA] LoRA version mismatch for KModel: <file> (more than 12 tensors not read: the whole LoRA is skipped)"},
    Profile{"sdcpp", "stable-diffusion.cpp", "leejet/stable-diffusion.cpp 97d29908 (2026-08, code reading only)", "",
            {kSdcppStyles, {}}, kSdcppForms, "facts from its code, not measured; releases before 2025-12-18 not covered", -1, ""},
};

}  // namespace

size_t file_kind(uint8_t arch) {
  for (size_t i = 0; i < kFileKindCount; ++i)
    if (kFileKinds[i].arch & arch) return i;
  return 0;
}

std::string_view kind_name(Kind k) {
  switch (k) {
    case K::kBlockModule: return "block-module";
    case K::kTextMlp: return "text-mlp";
    case K::kTopLevelModule: return "top-level-module";
    case K::kGuidanceIn: return "guidance-in";
    case K::kTimeEmbedder: return "time-embedder";
    case K::kSharedModulation: return "shared-modulation";
    case K::kFinalLinear: return "final-layer-linear";
    case K::kFinalModulation: return "final-layer-modulation";
    case K::kPartialAttention: return "partial-attention";
    case K::kPartialMlp: return "partial-mlp";
    case K::kAlphaTensor: return "alpha-tensor";
    case K::kMetadataAlpha: return "metadata-alpha";
    case K::kBiasDelta: return "bias-delta";
    case K::kDoraColumn: return "dora-column-scale";
    case K::kDoraRow: return "dora-row-magnitude";
    case K::kLokr: return "lokr";
    case K::kLoha: return "loha";
    case K::kDiff: return "diff";
    case K::kTextEncoderClip: return "text-encoder-clip";
    case K::kTextEncoderT5Te2: return "text-encoder-t5-te2";
    case K::kTextEncoderT5Te3: return "text-encoder-t5-te3";
    case K::kTextEncoderOther: return "text-encoder-other";
    case K::kNormScale: return "norm-scale";
    case K::kOtherDialect: return "other-dialect";
    case K::kMissingAlpha: return "missing-alpha";
    case K::kBiasOnPart: return "bias-on-part";
    case K::kTextEncoderClipDiffusers: return "text-encoder-clip-diffusers";
    case K::kAlphaPatternShadowed: return "alpha-pattern-shadowed";
    case K::kMissingAlphaTop: return "missing-alpha-top-level";
  }
  return "?";
}

std::string_view kind_description(Kind k) {
  switch (k) {
    case K::kBlockModule: return "block modules";
    case K::kTextMlp: return "text-stream MLP modules (txt_mlp, ff_context)";
    case K::kTopLevelModule: return "top-level modules (img_in, txt_in, vector_in)";
    case K::kGuidanceIn: return "guidance_in modules";
    case K::kTimeEmbedder: return "time_in modules";
    case K::kSharedModulation: return "FLUX.2 shared modulations";
    case K::kFinalLinear: return "final_layer.linear (proj_out)";
    case K::kFinalModulation: return "final_layer.adaLN_modulation.1 (norm_out.linear)";
    case K::kPartialAttention: return "fused targets with some of q, k, v absent";
    case K::kPartialMlp: return "single blocks without proj_mlp";
    case K::kAlphaTensor: return ".alpha tensors";
    case K::kMetadataAlpha: return "alpha from lora_adapter_metadata";
    case K::kBiasDelta: return "bias deltas";
    case K::kDoraColumn: return "per-column DoRA scales (dora_scale [1, in])";
    case K::kDoraRow: return "per-row DoRA magnitudes";
    case K::kLokr: return "LoKr deltas";
    case K::kLoha: return "LoHa deltas";
    case K::kDiff: return "dense .diff deltas";
    case K::kTextEncoderClip: return "CLIP-L text-encoder tensors";
    case K::kTextEncoderT5Te2: return "T5 text-encoder tensors (lora_te2_)";
    case K::kTextEncoderT5Te3: return "T5 text-encoder tensors (lora_te3_)";
    case K::kTextEncoderOther: return "text_encoders.* tensors";
    case K::kNormScale: return "absolute norm scales";
    case K::kOtherDialect: return "tensors in a second key style";
    case K::kMissingAlpha: return "block modules without .alpha";
    case K::kBiasOnPart: return "bias deltas of a part of a fused target or of norm_out";
    case K::kTextEncoderClipDiffusers: return "CLIP-L text-encoder tensors (text_encoder.)";
    case K::kAlphaPatternShadowed: return "single-block proj_out with the top-level proj_out's alpha pattern";
    case K::kMissingAlphaTop: return "top-level modules without .alpha";
  }
  return "?";
}

bool neutral_kind(Kind k) {
  return k == K::kMissingAlpha || k == K::kMissingAlphaTop || k == K::kAlphaPatternShadowed;
}

std::optional<Kind> parent_kind(Kind k) {
  if (k == K::kGuidanceIn || k == K::kTimeEmbedder || k == K::kSharedModulation) return K::kTopLevelModule;
  if (k == K::kTextMlp) return K::kBlockModule;
  if (k == K::kBiasOnPart) return K::kBiasDelta;
  if (k == K::kTextEncoderClipDiffusers) return K::kTextEncoderClip;
  return std::nullopt;
}

std::string_view treatment_name(Treatment t) {
  switch (t) {
    case T::kApplies: return "applies";
    case T::kDropsSilently: return "drops silently";
    case T::kDropsWithWarning: return "drops with a warning";
    case T::kRejectsFile: return "rejects the file";
    case T::kUnknown: return "unknown";
  }
  return "?";
}

std::span<const Profile> profiles() { return kProfiles; }

const Profile* find_profile(std::string_view name) {
  for (const Profile& p : kProfiles)
    if (p.name == name) return &p;
  return nullptr;
}

std::string profile_names() {
  std::string s;
  for (const Profile& p : kProfiles) {
    if (!s.empty()) s += ", ";
    s += p.name;
  }
  return s;
}

}  // namespace lv::loaders
