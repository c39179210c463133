// The loader profile table (docs/loaders.md has the facts, their measurements and sources).
// Adding a loader or a fact is adding rows here; nothing else branches on a loader's name.
#include <array>
#include <string>

#include "loaders/profile.h"

namespace lv::loaders {
namespace {

using K = Kind;
using T = Treatment;

// Where each fact comes from.
constexpr std::string_view kMeasured = "docs/loaders.md §1 (measured)";
constexpr std::string_view kRules = "docs/loaders.md §2";
constexpr std::string_view kPeers = "docs/flux-lora-formats.md §7";

// Key styles (dialect ids as detected by lora-verify; see src/lora/keys.cpp).
constexpr std::array<std::string_view, 1> kKohya = {"kohya"};
constexpr std::array<std::string_view, 1> kComfy = {"comfy"};
constexpr std::array<std::string_view, 2> kKohyaOrComfy = {"kohya", "comfy"};
constexpr std::array<std::string_view, 1> kAiToolkit = {"ai-toolkit"};
constexpr std::array<std::string_view, 1> kBareBfl = {"bfl"};
constexpr std::array<std::string_view, 1> kDiffusers = {"diffusers"};
constexpr std::array<std::string_view, 4> kNotKohya = {"comfy", "ai-toolkit", "bfl", "diffusers"};

// ---- InvokeAI (current) ----
constexpr std::string_view kInvokeUnsupported = "LoRA model is in unsupported FLUX format";
constexpr std::array kInvokeKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kRejectsFile, kInvokeUnsupported, kMeasured},
    Rule{K::kFinalModulation, T::kRejectsFile, kInvokeUnsupported, kMeasured},
    Rule{K::kFinalLinear, T::kDropsSilently, "lora_unet_final_layer* keys are skipped without a warning", kRules},
    Rule{K::kBiasDelta, T::kDropsWithWarning, ".diff_b beside lora_down is dropped with a warning", kPeers},
};
constexpr std::array kInvokeComfy = {
    Rule{K::kAlphaTensor, T::kRejectsFile,
         "Unsupported lora format: dict_keys(['proj.alpha', 'qkv.alpha']) (keys are split at their last two dots)",
         kMeasured},
};
constexpr std::array kInvokeAiToolkit = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kBiasDelta, T::kDropsWithWarning, "Unexpected keys: lora_B.bias is not applied", kMeasured},
    Rule{K::kAlphaTensor, T::kRejectsFile,
         "Unsupported lora format (an .alpha key is grouped as layer '…img_attn', suffix 'qkv.alpha')", kRules},
};
constexpr std::array kInvokeDiffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kApplies, "", kPeers},
    Rule{K::kFinalModulation, T::kRejectsFile,
         "AssertionError (assert len(grouped_state_dict) == 0: norm_out.linear is not consumed)", kMeasured},
    Rule{K::kAlphaTensor, T::kRejectsFile, "AssertionError (a PEFT file with .alpha is not detected as diffusers)",
         kPeers},
    Rule{K::kBiasDelta, T::kRejectsFile, "AssertionError (a PEFT file with lora_B.bias is not detected as diffusers)",
         kPeers},
    Rule{K::kTextEncoder, T::kRejectsFile, "AssertionError (text_encoder.* keys beside transformer keys)", kPeers},
    Rule{K::kOtherDialect, T::kRejectsFile, "AssertionError (mixed lora_A/lora_B and lora.down/lora.up suffixes)",
         kPeers},
};
constexpr std::array kInvokeStyles = {
    StyleSupport{kKohya, Recognition::kReads, "", kInvokeKohya, kMeasured},
    StyleSupport{kComfy, Recognition::kReads, "", kInvokeComfy, kMeasured},
    StyleSupport{kAiToolkit, Recognition::kReads, "", kInvokeAiToolkit, kMeasured},
    StyleSupport{kBareBfl, Recognition::kRejects, kInvokeUnsupported, {}, kMeasured},
    StyleSupport{kDiffusers, Recognition::kReads, "", kInvokeDiffusers, kMeasured},
};
constexpr std::array kInvokeForms = {Style::kPeft};

// ---- InvokeAI 5.1.1 ----
constexpr std::array kInvoke51Kohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
};
constexpr std::array kInvoke51Diffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kRejectsFile,
         "AssertionError (assert all(keys_present) or not any(keys_present): a single block without proj_mlp)",
         kMeasured},
};
constexpr std::array kInvoke51Styles = {
    StyleSupport{kKohya, Recognition::kReads, "", kInvoke51Kohya, kMeasured},
    StyleSupport{kDiffusers, Recognition::kReads, "", kInvoke51Diffusers, kMeasured},
};
constexpr std::array kInvoke51Forms = {Style::kKohya};

// ---- ComfyUI ----
constexpr std::array kComfyKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kBiasDelta, T::kApplies, "", kMeasured},
    Rule{K::kDiff, T::kApplies, "", kRules},
};
constexpr std::array kComfyAiToolkit = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kBiasDelta, T::kDropsWithWarning, "lora key not loaded: …lora_B.bias", kMeasured},
};
constexpr std::array kComfyDiffusers = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kApplies, "", kMeasured},
    Rule{K::kPartialAttention, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
};
constexpr std::array kComfyStyles = {
    StyleSupport{kKohyaOrComfy, Recognition::kReads, "", kComfyKohya, kMeasured},
    StyleSupport{kAiToolkit, Recognition::kReads, "", kComfyAiToolkit, kMeasured},
    StyleSupport{kBareBfl, Recognition::kIgnores, "lora key not loaded (for every key): nothing is applied", {},
                 kMeasured},
    StyleSupport{kDiffusers, Recognition::kReads, "", kComfyDiffusers, kMeasured},
};
constexpr std::array kComfyForms = {Style::kKohya, Style::kComfy};

// ---- diffusers ----
constexpr std::string_view kDiffusersKohyaTop =
    "written without the transformer. prefix by the kohya converter, then filtered out by load_lora_weights "
    "(no warning)";
constexpr std::array kDiffusersKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kDropsSilently, kDiffusersKohyaTop, kMeasured},
    Rule{K::kFinalLinear, T::kDropsSilently, kDiffusersKohyaTop, kMeasured},
    Rule{K::kFinalModulation, T::kDropsSilently, kDiffusersKohyaTop, kMeasured},
    Rule{K::kBiasDelta, T::kDropsSilently, ".diff_b keys are filtered out (logged at info level only)", kMeasured},
};
constexpr std::array kDiffusersNative = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kPartialMlp, T::kApplies, "", kMeasured},
    Rule{K::kPartialAttention, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kApplies, "", kMeasured},
    Rule{K::kFinalLinear, T::kApplies, "", kMeasured},
    Rule{K::kFinalModulation, T::kApplies, "", kMeasured},
    Rule{K::kMetadataAlpha, T::kApplies, "", kMeasured},
};
constexpr std::string_view kDiffusersNoPrefix = "no key has the transformer. prefix: nothing is applied";
constexpr std::array kDiffusersStyles = {
    StyleSupport{kKohyaOrComfy, Recognition::kReads, "", kDiffusersKohya, kMeasured},
    StyleSupport{kAiToolkit, Recognition::kIgnores, kDiffusersNoPrefix, {}, kMeasured},
    StyleSupport{kBareBfl, Recognition::kIgnores, kDiffusersNoPrefix, {}, kMeasured},
    StyleSupport{kDiffusers, Recognition::kReads, "", kDiffusersNative, kMeasured},
};
constexpr std::array kDiffusersForms = {Style::kDiffusers};

// ---- sd-scripts (networks/convert_flux_lora.py) ----
constexpr std::array kSdScriptsKohya = {
    Rule{K::kBlockModule, T::kApplies, "", kMeasured},
    Rule{K::kAlphaTensor, T::kApplies, "", kMeasured},
    Rule{K::kTopLevelModule, T::kDropsWithWarning, "unsupported key (left out of the conversion)", kMeasured},
    Rule{K::kFinalLinear, T::kDropsWithWarning, "unsupported key (left out of the conversion)", kMeasured},
    Rule{K::kFinalModulation, T::kDropsWithWarning, "unsupported key (left out of the conversion)", kMeasured},
    Rule{K::kBiasDelta, T::kDropsWithWarning, ".diff_b left unconverted (unsupported key)", kMeasured},
};
constexpr std::array kSdScriptsStyles = {
    StyleSupport{kKohya, Recognition::kReads, "", kSdScriptsKohya, kMeasured},
    StyleSupport{kNotKohya, Recognition::kIgnores, "not read: the converter expects lora_unet_* keys", {}, kMeasured},
};
constexpr std::array kSdScriptsForms = {Style::kKohya};

constexpr std::array kProfiles = {
    Profile{"invokeai", "InvokeAI (current)", "invoke-ai/InvokeAI 8e71a8a5 (2026-08)", kInvokeStyles, kInvokeForms,
            "reads diffusion_model. + lora_A/lora_B (no .alpha) completely, top-level modules included"},
    Profile{"invokeai-5.1", "InvokeAI 5.1.x", "invoke-ai/InvokeAI v5.1.1 (5806a4bc)", kInvoke51Styles, kInvoke51Forms,
            "the version of the proj_mlp AssertionError; only block-only kohya files are established"},
    Profile{"comfyui", "ComfyUI", "Comfy-Org/ComfyUI a125cd84 (2025-10)", kComfyStyles, kComfyForms, ""},
    Profile{"diffusers", "diffusers", "huggingface/diffusers 58eb52c0 (2026-08)", kDiffusersStyles, kDiffusersForms,
            ""},
    Profile{"sd-scripts", "sd-scripts", "kohya-ss/sd-scripts 48d368fa (2026-02)", kSdScriptsStyles, kSdScriptsForms,
            "networks/convert_flux_lora.py"},
    Profile{"forge", "Forge", "not established", {}, {}, "no rule established yet"},
    Profile{"sdcpp", "stable-diffusion.cpp", "not established", {}, {}, "no rule established yet"},
};

}  // namespace

std::string_view kind_name(Kind k) {
  switch (k) {
    case K::kBlockModule: return "block-module";
    case K::kTopLevelModule: return "top-level-module";
    case K::kFinalLinear: return "final-layer-linear";
    case K::kFinalModulation: return "final-layer-modulation";
    case K::kPartialAttention: return "partial-attention";
    case K::kPartialMlp: return "partial-mlp";
    case K::kAlphaTensor: return "alpha-tensor";
    case K::kMetadataAlpha: return "metadata-alpha";
    case K::kBiasDelta: return "bias-delta";
    case K::kDoraMagnitude: return "dora-magnitude";
    case K::kLokr: return "lokr";
    case K::kLoha: return "loha";
    case K::kDiff: return "diff";
    case K::kTextEncoder: return "text-encoder";
    case K::kNormScale: return "norm-scale";
    case K::kOtherDialect: return "other-dialect";
  }
  return "?";
}

std::string_view kind_description(Kind k) {
  switch (k) {
    case K::kBlockModule: return "block modules";
    case K::kTopLevelModule: return "top-level modules (img_in, txt_in, time_in, vector_in, guidance_in)";
    case K::kFinalLinear: return "final_layer.linear (proj_out)";
    case K::kFinalModulation: return "final_layer.adaLN_modulation.1 (norm_out.linear)";
    case K::kPartialAttention: return "fused targets with some of q, k, v absent";
    case K::kPartialMlp: return "single blocks without proj_mlp";
    case K::kAlphaTensor: return ".alpha tensors";
    case K::kMetadataAlpha: return "alpha from lora_adapter_metadata";
    case K::kBiasDelta: return "bias deltas";
    case K::kDoraMagnitude: return "DoRA magnitudes";
    case K::kLokr: return "LoKr deltas";
    case K::kLoha: return "LoHa deltas";
    case K::kDiff: return "dense .diff deltas";
    case K::kTextEncoder: return "text-encoder tensors";
    case K::kNormScale: return "absolute norm scales";
    case K::kOtherDialect: return "tensors in a second key style";
  }
  return "?";
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
