// Loader profiles (issue 12): every rule of the table, the kinds a file is described by, the
// measured rows of docs/loaders.md §1, `--for` outputs, the default style, and the agreement
// between the predicted and the re-read output of every conversion.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <map>
#include <set>

#include "loaders/verdict.h"
#include "report/pipeline.h"
#include "support/lora_support.h"

using namespace lv;
using loaders::Kind;
using loaders::Outcome;
using loaders::Treatment;

namespace {

GenSpec tiny(const std::string& dialect) {
  GenSpec s;
  s.layout = flux::Layout::tiny();
  s.dialect = dialect;
  s.rank = 2;
  s.seed = 11;
  return s;
}

GenSpec blocks_only(const std::string& dialect) {
  GenSpec s = tiny(dialect);
  s.embedders = false;
  s.norm_out = false;
  return s;
}

std::set<Kind> kinds_of(const loaders::Description& d) {
  std::set<Kind> k;
  for (const auto& it : d.items) k.insert(it.kinds.begin(), it.kinds.end());
  return k;
}

report::PipelineOptions style(Style s) {
  report::PipelineOptions o;
  o.style = s;
  o.to = s == Style::kDiffusers ? OutputLayout::kDiffusers : OutputLayout::kBfl;
  o.threads = 1;
  return o;
}

report::Report verify(const GenSpec& spec, const report::PipelineOptions& o) {
  auto r = report::run_verify(test::generated(spec), o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : report::Report{};
}

const report::LoaderRow& row(const report::Report& r, const std::string& loader) {
  for (const auto& l : r.loaders)
    if (l.loader == loader) return l;
  static report::LoaderRow none;
  ADD_FAILURE() << "no loader row " << loader;
  return none;
}

// What the output of `o` does in `loader`, read back from the converted file.
std::string output_outcome(const GenSpec& spec, Style s, const std::string& loader) {
  auto r = verify(spec, style(s));
  const auto& l = row(r, loader);
  return l.output ? l.output->outcome : "none";
}

Outcome expected(Treatment t) {
  switch (t) {
    case Treatment::kApplies: return Outcome::kLoads;
    case Treatment::kDropsSilently:
    case Treatment::kDropsWithWarning: return Outcome::kDrops;
    case Treatment::kRejectsFile: return Outcome::kRejects;
    case Treatment::kUnknown: return Outcome::kUnknown;
  }
  return Outcome::kUnknown;
}

}  // namespace

// ---- the table ----

TEST(LoaderProfiles, EveryLoaderOfTheIssueIsProfiledAndNamesItsSource) {
  std::vector<std::string> names;
  for (const auto& p : loaders::profiles()) {
    names.emplace_back(p.name);
    EXPECT_FALSE(p.established.empty()) << p.name;
    for (const auto& s : p.styles[0]) {
      EXPECT_FALSE(s.source.empty()) << p.name;
      EXPECT_FALSE(s.dialects.empty()) << p.name;
      std::set<Kind> seen;
      for (const auto& r : s.rules) {
        EXPECT_TRUE(seen.insert(r.kind).second) << p.name << ": two rules for " << loaders::kind_name(r.kind);
        EXPECT_FALSE(r.source.empty()) << p.name << " " << loaders::kind_name(r.kind);
        if (r.treatment == Treatment::kRejectsFile || r.treatment == Treatment::kDropsWithWarning) {
          EXPECT_FALSE(r.message.empty()) << p.name << " " << loaders::kind_name(r.kind) << ": a rejection or warning names its message";
        }
      }
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"invokeai", "invokeai-5.1", "comfyui", "diffusers", "sd-scripts", "forge", "sdcpp"}));
}

TEST(LoaderProfiles, EachDialectHasOneEntryPerLoader) {
  for (const auto& p : loaders::profiles()) {
    std::set<std::pair<Dialect, std::string_view>> seen;  // (dialect, condition)
    for (const auto& s : p.styles[0])
      for (auto d : s.dialects) EXPECT_TRUE(seen.insert({d, s.condition}).second) << p.name << " lists " << d << " twice";
  }
}

// Every rule of every loader decides the verdict of a file holding that kind beside plain block
// modules the loader applies (or alone, when it does not apply those).
TEST(LoaderProfiles, EveryRuleDecidesTheVerdictOfAFileWithThatKind) {
  int rules = 0;
  for (const auto& p : loaders::profiles()) {
    for (const auto& s : p.styles[0]) {
      if (s.recognition != loaders::Recognition::kReads) continue;
      for (const auto& r : s.rules) {
        loaders::Description d;
        d.dialect = s.dialects.front();
        if (!s.condition.empty()) d.conditions.emplace_back(s.condition);
        d.items.push_back({"t.under.test", "double_blocks.0.img_attn.qkv", {r.kind}, loaders::Item::Piece::kWeights, 0});
        auto v = loaders::evaluate(p, d);
        EXPECT_EQ(v.outcome, expected(r.treatment)) << p.name << " / " << d.dialect << " / " << loaders::kind_name(r.kind);
        if (v.outcome == Outcome::kRejects) {
          EXPECT_NE(v.message.find(std::string(r.message)), std::string::npos) << v.message;
        }
        if (v.outcome == Outcome::kDrops) {
          ASSERT_EQ(v.dropped.size(), 1u);
          EXPECT_EQ(v.dropped[0].tensor, "t.under.test");
          EXPECT_EQ(v.dropped[0].why, r.message);
        }
        ++rules;
      }
    }
  }
  EXPECT_GT(rules, 150);
}

TEST(LoaderProfiles, IgnoredAndRejectedStylesAndUnprofiledDialects) {
  loaders::Description d;
  d.dialect = Dialect::kBfl;
  d.items.push_back({"double_blocks.0.img_attn.qkv.lora_A.weight", "double_blocks.0.img_attn.qkv", {Kind::kBlockModule},
                     loaders::Item::Piece::kWeights, 0});
  auto invoke = loaders::evaluate(*loaders::find_profile("invokeai"), d);
  EXPECT_EQ(invoke.outcome, Outcome::kRejects);
  // Measured (data/loaders/invokeai-*.json): the install probe refuses bare BFL names.
  EXPECT_EQ(invoke.message.rfind("NotAMatchError: unrecognized token vector length None", 0), 0u) << invoke.message;
  auto comfy = loaders::evaluate(*loaders::find_profile("comfyui"), d);
  EXPECT_EQ(comfy.outcome, Outcome::kDrops);
  EXPECT_EQ(comfy.dropped.size(), 1u);
  d.dialect = Dialect::kNone;  // a style no loader entry names
  auto unknown = loaders::evaluate(*loaders::find_profile("comfyui"), d);
  EXPECT_EQ(unknown.outcome, Outcome::kUnknown);
  EXPECT_NE(unknown.message.find("not established"), std::string::npos);
}

TEST(LoaderProfiles, ForgeSkipsAFileWithMoreThanTwelveUnreadTensors) {
  const auto& forge = *loaders::find_profile("forge");
  loaders::Description d;
  d.dialect = Dialect::kAiToolkit;
  for (int i = 0; i < 12; ++i) {
    std::string name = "b";
    name += std::to_string(i);
    d.items.push_back({name, "double_blocks.0.img_attn.qkv", {Kind::kBlockModule, Kind::kBiasDelta},
                       loaders::Item::Piece::kBias, 0});
  }
  EXPECT_EQ(loaders::evaluate(forge, d).outcome, Outcome::kDrops);
  d.items.push_back({"b12", "double_blocks.0.img_attn.qkv", {Kind::kBlockModule, Kind::kBiasDelta}, loaders::Item::Piece::kBias, 0});
  auto v = loaders::evaluate(forge, d);
  EXPECT_EQ(v.outcome, Outcome::kRejects);
  EXPECT_NE(v.message.find("LoRA version mismatch"), std::string::npos);
}

TEST(LoaderProfiles, GuidanceInFallsBackToTheTopLevelRuleUnlessStated) {
  loaders::Description d;
  d.dialect = Dialect::kDiffusers;
  d.items.push_back({"g", "guidance_in.in_layer", {Kind::kGuidanceIn}, loaders::Item::Piece::kWeights, 0});
  EXPECT_EQ(loaders::evaluate(*loaders::find_profile("comfyui"), d).outcome, Outcome::kLoads);
  // InvokeAI maps guidance_embedder.linear_1 and linear_2 onto one module.
  EXPECT_EQ(loaders::evaluate(*loaders::find_profile("invokeai"), d).outcome, Outcome::kDrops);
}

// ---- describing files ----

TEST(LoaderKinds, ModulesOfAKohyaFile) {
  GenSpec s = tiny("kohya");
  s.alpha = 2;
  auto d = loaders::describe(test::load_or_die(test::generated(s)));
  EXPECT_EQ(d.dialect, Dialect::kKohya);
  auto k = kinds_of(d);
  for (Kind want : {Kind::kBlockModule, Kind::kTopLevelModule, Kind::kGuidanceIn, Kind::kFinalLinear, Kind::kFinalModulation,
                    Kind::kAlphaTensor})
    EXPECT_TRUE(k.count(want)) << loaders::kind_name(want);
  EXPECT_FALSE(k.count(Kind::kPartialMlp));
}

TEST(LoaderKinds, PartialFusedTargetsBiasesMetadataAndTextEncoders) {
  GenSpec s = tiny("diffusers");
  s.proj_mlp = false;
  s.skip = {"attn.to_k"};
  s.bias = true;
  s.metadata_alpha = true;
  s.text_encoder = true;
  auto k = kinds_of(loaders::describe(test::load_or_die(test::generated(s))));
  for (Kind want : {Kind::kPartialMlp, Kind::kPartialAttention, Kind::kBiasDelta, Kind::kMetadataAlpha, Kind::kTextEncoderClip})
    EXPECT_TRUE(k.count(want)) << loaders::kind_name(want);
}

TEST(LoaderKinds, AdapterFormsDoraAndT5) {
  const uint64_t H = 8;
  std::vector<test::Tensor> ts = {
      {"lora_unet_double_blocks_0_img_attn_proj.lokr_w1", {2, 2}, test::random_values(4, 1)},
      {"lora_unet_double_blocks_0_img_attn_proj.lokr_w2", {4, 4}, test::random_values(16, 2)},
      {"lora_unet_double_blocks_0_txt_attn_proj.hada_w1_a", {H, 2}, test::random_values(16, 3)},
      {"lora_unet_double_blocks_0_txt_attn_proj.hada_w1_b", {2, H}, test::random_values(16, 4)},
      {"lora_unet_double_blocks_0_txt_attn_proj.hada_w2_a", {H, 2}, test::random_values(16, 5)},
      {"lora_unet_double_blocks_0_txt_attn_proj.hada_w2_b", {2, H}, test::random_values(16, 6)},
      {"lora_unet_double_blocks_0_img_mlp_2.diff", {H, 16}, test::random_values(128, 7)},
      {"lora_unet_double_blocks_0_img_mod_lin.lora_down.weight", {2, H}, test::random_values(16, 8)},
      {"lora_unet_double_blocks_0_img_mod_lin.lora_up.weight", {6 * H, 2}, test::random_values(96, 9)},
      {"lora_unet_double_blocks_0_img_mod_lin.dora_scale", {1, H}, test::random_values(8, 10)},
      {"lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight", {2, 4}, test::random_values(8, 11)},
  };
  auto model = test::load_or_die(test::file_from_bytes(test::build_file(ts)), flux::Layout::tiny());
  auto k = kinds_of(loaders::describe(model));
  for (Kind want : {Kind::kLokr, Kind::kLoha, Kind::kDiff, Kind::kDoraColumn, Kind::kTextEncoderT5Te3})
    EXPECT_TRUE(k.count(want)) << loaders::kind_name(want);
  // InvokeAI reads all of these in kohya files except the lora_te3_ spelling of T5.
  auto v = loaders::evaluate(*loaders::find_profile("invokeai"), loaders::describe(model));
  EXPECT_EQ(v.outcome, Outcome::kRejects);
  EXPECT_NE(v.message.find("lora_te3_"), std::string::npos) << v.message;
}

// ---- docs/loaders.md §1, row by row: the output of each style in each measured loader ----

TEST(LoadersMeasured, KohyaBlocksOnlyLoadsEverywhere) {
  for (const char* l : {"invokeai", "comfyui", "diffusers", "sd-scripts"})
    EXPECT_EQ(output_outcome(blocks_only("diffusers"), Style::kKohya, l), "loads") << l;
}

TEST(LoadersMeasured, KohyaWithTopLevelModules) {
  GenSpec s = tiny("diffusers");
  auto r = verify(s, style(Style::kKohya));
  EXPECT_EQ(row(r, "invokeai").output->outcome, "rejects");
  EXPECT_NE(row(r, "invokeai").output->message.find("NotAMatchError: unrecognized token vector length None"),
            std::string::npos);
  EXPECT_EQ(row(r, "comfyui").output->outcome, "loads");
  const auto& diffusers = *row(r, "diffusers").output;
  EXPECT_EQ(diffusers.outcome, "drops");
  // The ten top-level targets, each lost whole.
  ASSERT_EQ(diffusers.lost.size(), 10u);
  for (const auto& t : diffusers.lost) EXPECT_EQ(t.weight, 1.0) << t.target;
  EXPECT_EQ(row(r, "sd-scripts").output->outcome, "drops");
}

TEST(LoadersMeasured, KohyaWithBiasDeltas) {
  GenSpec s = blocks_only("diffusers");
  s.bias = true;
  auto r = verify(s, style(Style::kKohya));
  EXPECT_EQ(row(r, "comfyui").output->outcome, "loads");
  EXPECT_EQ(row(r, "diffusers").output->outcome, "drops");
  EXPECT_EQ(row(r, "sd-scripts").output->outcome, "drops");
  // Only the bias delta is lost: the weights stay.
  for (const auto& t : row(r, "diffusers").output->lost) {
    EXPECT_EQ(t.weight, 0.0) << t.target;
    EXPECT_GT(t.bias, 0.99) << t.target;
  }
}

TEST(LoadersMeasured, ComfyStyle) {
  auto r = verify(tiny("diffusers"), style(Style::kComfy));
  EXPECT_EQ(row(r, "invokeai").output->outcome, "rejects");
  // lora-verify's metadata has no ai-toolkit `software` entry: InvokeAI's probe takes comfy files
  // for nothing it knows (measured).
  EXPECT_NE(row(r, "invokeai").output->message.find("NotAMatchError: model does not match LyCORIS LoRA heuristics"),
            std::string::npos);
  EXPECT_EQ(row(r, "comfyui").output->outcome, "loads");
  EXPECT_EQ(row(r, "diffusers").output->outcome, "drops");
  EXPECT_EQ(row(r, "sd-scripts").output->outcome, "drops");
  EXPECT_EQ(output_outcome(blocks_only("diffusers"), Style::kComfy, "diffusers"), "loads");
}

TEST(LoadersMeasured, PeftStyle) {
  auto r = verify(tiny("diffusers"), style(Style::kPeft));
  EXPECT_EQ(row(r, "invokeai").output->outcome, "loads");
  EXPECT_EQ(row(r, "comfyui").output->outcome, "loads");
  EXPECT_EQ(row(r, "diffusers").output->outcome, "drops");
  EXPECT_EQ(row(r, "sd-scripts").output->outcome, "drops");
  GenSpec b = tiny("diffusers");
  b.bias = true;
  auto rb = verify(b, style(Style::kPeft));
  EXPECT_EQ(row(rb, "invokeai").output->outcome, "rejects");  // lora_B.bias: the probe's BFL-PEFT detector refuses it
  EXPECT_EQ(row(rb, "comfyui").output->outcome, "drops");
}

TEST(LoadersMeasured, BareBflNamesLoadNowhere) {
  auto r = verify(tiny("diffusers"), style(Style::kBfl));
  EXPECT_EQ(row(r, "invokeai").output->outcome, "rejects");
  for (const char* l : {"comfyui", "diffusers", "sd-scripts"}) {
    const auto& o = *row(r, l).output;
    EXPECT_EQ(o.outcome, "drops") << l;
    EXPECT_EQ(o.lost.size(), r.modules.size()) << l << ": every target is lost";
  }
}

TEST(LoadersMeasured, DiffusersLayout) {
  EXPECT_EQ(output_outcome(blocks_only("kohya"), Style::kDiffusers, "invokeai"), "loads");
  auto r = verify(tiny("kohya"), style(Style::kDiffusers));
  EXPECT_EQ(row(r, "invokeai").output->outcome, "rejects");
  EXPECT_NE(row(r, "invokeai").output->message.find("AssertionError"), std::string::npos);
  EXPECT_EQ(row(r, "comfyui").output->outcome, "loads");
  EXPECT_EQ(row(r, "diffusers").output->outcome, "loads");
  EXPECT_EQ(row(r, "sd-scripts").output->outcome, "drops");
}

TEST(LoadersMeasured, InvokeAi51CrashesOnSingleBlocksWithoutProjMlp) {
  GenSpec s = blocks_only("diffusers");
  auto with = verify(s, style(Style::kKohya));
  EXPECT_EQ(row(with, "invokeai-5.1").input.outcome, "loads");
  s.proj_mlp = false;
  auto without = verify(s, style(Style::kKohya));
  EXPECT_EQ(row(without, "invokeai-5.1").input.outcome, "rejects");
  EXPECT_NE(row(without, "invokeai-5.1").input.message.find("AssertionError"), std::string::npos);
  // lora-verify's kohya conversion of the failing file loads in current InvokeAI and in ComfyUI.
  EXPECT_EQ(row(without, "invokeai").output->outcome, "loads");
  EXPECT_EQ(row(without, "comfyui").output->outcome, "loads");
  EXPECT_EQ(row(without, "invokeai-5.1").output->outcome, "loads");
}

// ---- convert --for ----

// For every loader with a form and a spread of inputs: the output, re-read, loads in that
// loader (or is refused naming tensors); its verdict matches the prediction that chose it.
TEST(LoadersFor, OutputsLoadInTheirLoaderOrAreRefused) {
  std::vector<GenSpec> inputs;
  for (const char* d : {"diffusers", "kohya", "ai-toolkit", "xlabs", "onetrainer"}) inputs.push_back(tiny(d));
  inputs.push_back(blocks_only("diffusers"));
  GenSpec bias = tiny("diffusers");
  bias.bias = true;
  inputs.push_back(bias);
  GenSpec partial = blocks_only("diffusers");
  partial.proj_mlp = false;
  partial.skip = {"attn.to_k"};
  inputs.push_back(partial);
  int loads = 0, refused = 0;
  for (const auto& spec : inputs) {
    auto file = test::generated(spec);
    auto model = test::load_or_die(file);
    for (const auto& p : loaders::profiles()) {
      if (p.forms.empty()) continue;
      auto choice = loaders::choose_form(p, model);
      ASSERT_TRUE(choice);
      report::PipelineOptions o;
      o.for_loader = std::string(p.name);
      o.threads = 1;
      auto r = report::run_verify(file, o);
      const std::string what = std::string(p.name) + " / " + spec.dialect;
      if (!choice->verdict.dropped.empty()) {
        ASSERT_FALSE(r.ok()) << what;
        EXPECT_EQ(r.error().code, ErrorCode::kBadInput);
        EXPECT_NE(r.error().message.find(choice->verdict.dropped[0].tensor), std::string::npos) << r.error().message;
        ++refused;
        o.drop_unsupported = true;
        r = report::run_verify(file, o);
        ASSERT_TRUE(r.ok()) << what << ": " << r.error().message;
        EXPECT_EQ(r->dropped_for.size(), choice->verdict.dropped.size()) << what;
      }
      ASSERT_TRUE(r.ok()) << what << ": " << r.error().message;
      EXPECT_TRUE(r->pass) << what << ": " << r->verdict;
      EXPECT_EQ(r->style, style_name(choice->style)) << what;
      const auto& out = *row(*r, std::string(p.name)).output;
      if (choice->verdict.dropped.empty()) {
        EXPECT_EQ(out.outcome, loaders::outcome_name(choice->verdict.outcome)) << what << ": " << out.message;
      } else {
        EXPECT_TRUE(out.outcome == "loads" || out.outcome == "unknown") << what << ": " << out.outcome << " " << out.message;
      }
      loads += out.outcome == "loads";
    }
  }
  EXPECT_GT(loads, 20);
  EXPECT_GT(refused, 3);
}

// A --for output is written only when its verdict for that loader is "loads": a file the
// loader rejects in every form (InvokeAI: no block module to detect the format by) is refused
// even with --drop-unsupported, and a verdict that is not established needs --allow-unknown.
TEST(LoadersFor, RejectedOrUnknownOutputsAreRefused) {
  GenSpec top = tiny("diffusers");
  top.blocks = false;  // embedders and norm_out only
  GenSpec te = tiny("diffusers");
  te.text_encoder = true;
  int rejected = 0, unknown = 0;
  for (const GenSpec& spec : {top, te, tiny("kohya"), tiny("xlabs"), blocks_only("onetrainer")}) {
    auto file = test::generated(spec);
    auto model = test::load_or_die(file);
    for (const auto& p : loaders::profiles()) {
      auto choice = loaders::choose_form(p, model);
      if (!choice) continue;
      const LoraModel kept = choice->verdict.dropped.empty() ? model : loaders::without(model, choice->verdict.dropped);
      const auto outcome = loaders::evaluate(p, loaders::describe_output(kept, choice->style)).outcome;
      if (outcome == loaders::Outcome::kLoads) continue;
      report::PipelineOptions o;
      o.for_loader = std::string(p.name);
      o.drop_unsupported = true;
      o.threads = 1;
      auto r = report::run_verify(file, o);
      const std::string what = std::string(p.name) + " / " + spec.dialect;
      ASSERT_FALSE(r.ok()) << what;
      EXPECT_EQ(r.error().code, ErrorCode::kBadInput) << what;
      if (outcome == loaders::Outcome::kUnknown) {
        ++unknown;
        EXPECT_NE(r.error().message.find("--allow-unknown"), std::string::npos) << r.error().message;
        o.allow_unknown = true;
        auto allowed = report::run_verify(file, o);
        ASSERT_TRUE(allowed.ok()) << what << ": " << allowed.error().message;
        EXPECT_EQ(row(*allowed, std::string(p.name)).output->outcome, "unknown") << what;
      } else {
        ++rejected;
        EXPECT_NE(r.error().message.find(std::string(p.display) + " " + std::string(loaders::outcome_name(outcome))),
                  std::string::npos) << r.error().message;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(unknown, 0);
  auto dir = test::temp_dir();
  const std::string in = dir + "/top.safetensors", out = dir + "/out.safetensors";
  {
    auto bytes = generate_lora(top);
    ASSERT_TRUE(bytes.ok());
    std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
  }
  auto cli = test::run_cli({"convert", in, "-o", out, "--for", "invokeai", "--drop-unsupported"});
  EXPECT_EQ(cli.exit_code, 65) << cli.err;
  EXPECT_NE(cli.err.find("refused for invokeai: InvokeAI (current) rejects"), std::string::npos) << cli.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(LoadersFor, DroppedTensorsAreListedWithTheLostShare) {
  GenSpec s = tiny("diffusers");
  report::PipelineOptions o;
  o.for_loader = "sd-scripts";
  o.drop_unsupported = true;
  auto r = report::run_verify(test::generated(s), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->pass);
  ASSERT_FALSE(r->dropped_for.empty());
  std::set<std::string> targets;
  for (const auto& d : r->dropped_for) {
    targets.insert(d.target);
    EXPECT_EQ(d.weight_lost, 1.0) << d.tensor;
  }
  EXPECT_EQ(targets.size(), 10u);  // every top-level target of FLUX.1-dev's layout
  EXPECT_EQ(row(*r, "sd-scripts").output->outcome, "loads");
  bool finding = false;
  for (const auto& f : r->findings) finding |= f.id == "convert.dropped_for_loader";
  EXPECT_TRUE(finding);
}

TEST(LoadersFor, UnknownLoaderIsAUsageError) {
  report::PipelineOptions o;
  o.for_loader = "photoshop";
  auto r = report::run_verify(test::generated(tiny("diffusers")), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUsage);
  EXPECT_NE(r.error().message.find("invokeai"), std::string::npos);
}

// ---- the default style of convert ----

TEST(LoadersDefault, BlocksOnlyGoesToKohya) {
  auto model = test::load_or_die(test::generated(blocks_only("diffusers")));
  auto d = loaders::default_form(model);
  EXPECT_EQ(d.style, Style::kKohya);
  for (const auto& n : d.not_served) EXPECT_NE(n, "comfyui");
}

TEST(LoadersDefault, NamesTheLoadersItDoesNotServe) {
  GenSpec s = tiny("diffusers");
  auto file = test::generated(s);
  auto model = test::load_or_die(file);
  auto d = loaders::default_form(model);
  int served_best = 0;
  for (Style st : {Style::kKohya, Style::kComfy, Style::kPeft, Style::kBfl, Style::kDiffusers}) {
    int served = 0;
    for (const auto& p : loaders::profiles())
      served += loaders::evaluate(p, loaders::describe_output(model, st)).outcome == Outcome::kLoads;
    served_best = std::max(served_best, served);
  }
  EXPECT_EQ(static_cast<int>(loaders::profiles().size() - d.not_served.size()), served_best);
  report::PipelineOptions o;
  o.default_for_loaders = true;
  auto dir = test::temp_dir();
  auto r = report::run_convert(file, dir + "/out.safetensors", o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->style, style_name(d.style));
  EXPECT_EQ(r->not_served, d.not_served);
}

// ---- the prediction that picks a form agrees with the file it writes ----

TEST(LoadersPrediction, DescribedOutputMatchesTheReReadOutputForEveryStyle) {
  std::vector<GenSpec> inputs;
  for (const char* d : {"diffusers", "kohya", "comfy", "ai-toolkit", "bfl", "onetrainer", "onetrainer-bfl", "xlabs", "fal"})
    inputs.push_back(tiny(d));
  GenSpec b = tiny("diffusers");
  b.bias = true;
  b.proj_mlp = false;
  b.text_encoder = true;
  inputs.push_back(b);
  for (const auto& spec : inputs) {
    auto file = test::generated(spec);
    auto model = test::load_or_die(file);
    for (Style s : {Style::kKohya, Style::kComfy, Style::kPeft, Style::kBfl, Style::kDiffusers}) {
      auto r = report::run_verify(file, style(s));
      ASSERT_TRUE(r.ok()) << r.error().message;
      const auto predicted = loaders::describe_output(model, s);
      for (const auto& p : loaders::profiles()) {
        auto v = loaders::evaluate(p, predicted);
        const auto& out = *row(*r, std::string(p.name)).output;
        // A prediction counts input parts, not output tensors, so a limit on unread tensors
        // (Forge's 12) can turn a predicted drop into a rejection; both mean "not complete",
        // and `--for` refuses or drops those tensors either way.
        const bool limit_decides = p.max_unread >= 0 && v.outcome == Outcome::kDrops && out.outcome == "rejects";
        if (!limit_decides) {
          EXPECT_EQ(out.outcome, loaders::outcome_name(v.outcome))
              << spec.dialect << " -> " << style_name(s) << " in " << p.name << ": predicted " << v.message
              << "; read back " << out.message;
        }
        // Tensor counts differ (a prediction names input tensors, the output has fused modules);
        // the targets that lose something must not.
        std::set<std::string> lost_predicted, lost_read;
        for (const auto& d : v.dropped)
          if (!d.target.empty()) lost_predicted.insert(d.target);
        for (const auto& t : out.lost) lost_read.insert(t.target);
        if (v.outcome == Outcome::kDrops && out.outcome == "drops") {
          EXPECT_EQ(lost_read, lost_predicted) << spec.dialect << " -> " << style_name(s) << " in " << p.name;
        }
      }
    }
  }
}

// ---- the command line ----

TEST(LoadersCli, ForAndItsUsageErrors) {
  auto dir = test::temp_dir();
  const std::string in = dir + "/in.safetensors", out = dir + "/out.safetensors";
  ASSERT_EQ(test::run_cli({"sample", in, "--tiny", "--rank", "2"}).exit_code, 0);
  EXPECT_EQ(test::run_cli({"convert", in, "-o", out, "--for", "invokeai", "--style", "kohya"}).exit_code, 64);
  EXPECT_EQ(test::run_cli({"convert", in, "-o", out, "--drop-unsupported"}).exit_code, 64);
  auto bad = test::run_cli({"convert", in, "-o", out, "--for", "nope"});
  EXPECT_EQ(bad.exit_code, 64);
  EXPECT_NE(bad.err.find("comfyui"), std::string::npos) << bad.err;
  auto refused = test::run_cli({"convert", in, "-o", out, "--for", "sd-scripts"});
  EXPECT_EQ(refused.exit_code, 65) << refused.err;
  EXPECT_NE(refused.err.find("lora_A.weight"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--drop-unsupported"), std::string::npos) << refused.err;
  auto ok = test::run_cli({"convert", in, "-o", out, "--for", "invokeai"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("invokeai: the converted file"), std::string::npos) << ok.out;
  auto verify = test::run_cli({in, "--for", "sd-scripts", "--drop-unsupported"});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_NE(verify.out.find("dropped for sd-scripts"), std::string::npos) << verify.out;
}

TEST(LoadersCli, EveryReportEndsWithWhatToRun) {
  auto dir = test::temp_dir();
  const std::string in = dir + "/in.safetensors";
  ASSERT_EQ(test::run_cli({"sample", in, "--tiny", "--rank", "2"}).exit_code, 0);
  auto r = test::run_cli({in});
  EXPECT_NE(r.out.find("loaders (input -> output):"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lora-verify convert " + in + " -o in.invokeai.safetensors --for invokeai"), std::string::npos) << r.out;
  auto j = test::run_cli({"inspect", in, "--json"});
  EXPECT_NE(j.out.find("\"loaders\""), std::string::npos);
  EXPECT_NE(j.out.find("\"outcome\": \"rejects\""), std::string::npos) << j.out;
}
