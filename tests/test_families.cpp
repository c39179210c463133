// Model families (issue 14): FLUX.2 [dev], [klein] 9B and 4B, Chroma and Flex.1 are read,
// detected, converted both ways and verified; the detection traps of
// docs/formats.md#telling-families-apart, the diffusers FLUX.2 norm_out bug (DF-1,
// docs/formats.md#flux2-peer-failures) and a gate/up exchange are caught.
#include <gtest/gtest.h>

#include "flux/family.h"
#include "lora/converter.h"
#include "lora/reread.h"
#include "report/pipeline.h"
#include "support/lora_support.h"
#include "verify/equivalence.h"

using namespace lv;
using test::Tensor;

namespace {

const flux::Layout kF2 = flux::layout_of(*flux::find_family("flux2-tiny"));

// A family's real shapes, but only the first blocks: small files with every module kind.
GenSpec real(const std::string& family, const std::string& dialect) {
  GenSpec s;
  s.layout = flux::layout_of(*flux::find_family(family));
  s.dialect = dialect;
  s.rank = 2;
  s.seed = 5;
  s.max_double = 1;
  s.max_single = 1;
  return s;
}

GenSpec tiny2(const std::string& dialect) {
  GenSpec s;
  s.layout = kF2;
  s.dialect = dialect;
  s.rank = 2;
  s.seed = 9;
  return s;
}

Result<LoraModel> load(std::shared_ptr<const st::SafetensorsFile> f, const flux::Family* family = nullptr) {
  LoadOptions o;
  o.family = family;
  return load_lora(std::move(f), o);
}

report::Report verify_as(std::shared_ptr<const st::SafetensorsFile> f, Style s) {
  report::PipelineOptions o;
  o.style = s;
  o.to = s == Style::kDiffusers ? OutputLayout::kDiffusers : OutputLayout::kBfl;
  o.threads = 1;
  auto r = report::run_verify(std::move(f), o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : report::Report{};
}

std::vector<Tensor> attention_only(uint64_t hidden, int blocks) {
  std::vector<Tensor> ts;
  for (int b = 0; b < blocks; ++b)
    for (const char* p : {"attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0"}) {
      std::string m = "transformer.transformer_blocks." + std::to_string(b) + "." + p;
      ts.push_back({m + ".lora_A.weight", {2, hidden}, test::random_values(2 * hidden, b + 1)});
      ts.push_back({m + ".lora_B.weight", {hidden, 2}, test::random_values(2 * hidden, b + 100)});
    }
  return ts;
}

// Swaps the two row halves of a [rows, cols] tensor.
std::vector<double> swap_halves(const std::vector<double>& v, uint64_t rows, uint64_t cols) {
  std::vector<double> out(v.size());
  const uint64_t half = rows / 2;
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t c = 0; c < cols; ++c) out[((r + half) % rows) * cols + c] = v[r * cols + c];
  return out;
}

}  // namespace

TEST(Families, TheTableNamesEveryFamilyOfTheIssue) {
  for (const char* n : {"flux1", "chroma", "flex1", "flux2-dev", "flux2-klein-9b", "flux2-klein-4b"})
    EXPECT_NE(flux::find_family(n), nullptr) << n;
  // FLUX.2 linear1 rows (docs/formats.md#flux2-sizes): 55296, 36864, 27648.
  const std::pair<const char*, int64_t> rows[] = {{"flux2-dev", 55296}, {"flux2-klein-9b", 36864}, {"flux2-klein-4b", 27648}};
  for (auto [name, n] : rows) {
    auto t = flux::find_target(flux::layout_of(*flux::find_family(name)), "single_blocks.0.linear1");
    ASSERT_TRUE(t) << name;
    EXPECT_EQ(t->rows, n) << name;
  }
  // Module counts in BFL / diffusers naming: 171/203, 121/153, 89/109.
  const std::tuple<const char*, size_t, size_t> counts[] = {
      {"flux2-dev", 171, 203}, {"flux2-klein-9b", 121, 153}, {"flux2-klein-4b", 89, 109}, {"flux1", 314, 504}};
  for (auto [name, bfl, diff] : counts) {
    auto l = flux::layout_of(*flux::find_family(name));
    EXPECT_EQ(flux::bfl_targets(l).size(), bfl) << name;
    EXPECT_EQ(flux::diffusers_map(l).size(), diff) << name;
  }
}

TEST(Families, Flux2KeepsLinear1FusedAndSwapsOnlyTheFinalLayer) {
  auto parts = flux::parts_of_target(kF2, "single_blocks.0.linear1");
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].diffusers, "single_transformer_blocks.0.attn.to_qkv_mlp_proj");
  auto qkv = flux::parts_of_target(kF2, "double_blocks.0.img_attn.qkv");
  ASSERT_EQ(qkv.size(), 3u);
  EXPECT_EQ(qkv[1].row_begin, kF2.hidden);
  for (const auto& pm : flux::diffusers_map(kF2)) EXPECT_EQ(pm.swap_halves, pm.target == "final_layer.adaLN_modulation.1") << pm.diffusers;
  EXPECT_FALSE(flux::find_target(kF2, "vector_in.in_layer"));
  EXPECT_FALSE(flux::find_target(kF2, "double_blocks.0.img_mod.lin"));
  EXPECT_TRUE(flux::find_target(kF2, "double_stream_modulation_img.lin"));
}

// Every family in every dialect it has: detected as itself, and its conversion verifies.
TEST(Families, EachFamilyIsDetectedInEachDialect) {
  for (const char* family : {"flux1", "chroma", "flux2-dev", "flux2-klein-9b", "flux2-klein-4b"}) {
    for (const char* dialect : {"diffusers", "kohya", "comfy", "ai-toolkit", "bfl"}) {
      auto m = load(test::generated(real(family, dialect)));
      ASSERT_TRUE(m.ok()) << family << " / " << dialect << ": " << m.error().message;
      EXPECT_EQ(m->family, family) << dialect;
      EXPECT_FALSE(m->family_evidence.empty());
      for (const auto& f : m->findings) EXPECT_NE(f.severity, Severity::kError) << family << " / " << dialect << ": " << f.message;
    }
  }
}

TEST(Families, CompleteKlein4bDiffusersFileIsNotMistakenForFlux1) {
  GenSpec s = real("flux2-klein-4b", "diffusers");
  s.max_double = s.max_single = -1;
  s.rank = 1;
  auto r = verify_as(test::generated(s), Style::kKohya);
  EXPECT_TRUE(r.pass) << r.verdict;
  EXPECT_EQ(r.family, "flux2-klein-4b");
  EXPECT_EQ(r.summary.targets, 89);
}

// ---- the traps of docs/formats.md#telling-families-apart ----

TEST(FamilyDetection, AttentionOnlyOnEarlyBlocksAtWidth3072IsAmbiguous) {
  auto file = test::file_from_bytes(test::build_file(attention_only(3072, 5)));
  auto m = load(file);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, ErrorCode::kBadInput);
  for (const char* want : {"ambiguous", "flux1", "flux2-klein-4b", "--model"})
    EXPECT_NE(m.error().message.find(want), std::string::npos) << m.error().message;
  // --model decides, either way.
  for (const char* f : {"flux1", "flux2-klein-4b"}) {
    auto named = load(file, flux::find_family(f));
    ASSERT_TRUE(named.ok()) << f << ": " << named.error().message;
    EXPECT_EQ(named->family, f);
  }
  report::PipelineOptions o;
  auto refused = report::run_verify(file, o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kBadInput);
}

TEST(FamilyDetection, ADoubleBlockIndexAboveFourRulesOutKlein4b) {
  auto m = load(test::file_from_bytes(test::build_file(attention_only(3072, 6))));
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->family, "flux1");
  bool said = false;
  for (const auto& e : m->family_evidence) said |= e.find("[klein] 4B") != std::string::npos && e.find("double block 5") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(FamilyDetection, ImgInAloneNeverDecides) {
  // A FLUX.1 Canny/Depth img_in (A: r x 128) has the shape of Klein 4B's img_in.
  std::vector<Tensor> ts = {{"diffusion_model.img_in.lora_A.weight", {2, 128}, test::random_values(256, 1)},
                            {"diffusion_model.img_in.lora_B.weight", {3072, 2}, test::random_values(6144, 2)}};
  auto m = load(test::file_from_bytes(test::build_file(ts)));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("ambiguous"), std::string::npos) << m.error().message;
}

TEST(FamilyDetection, Linear1RowsDecideKlein4b) {
  std::vector<Tensor> ts = attention_only(3072, 2);
  ts.push_back({"transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_A.weight", {2, 3072}, test::random_values(6144, 3)});
  ts.push_back({"transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_B.weight", {27648, 2}, test::random_values(55296, 4)});
  auto m = load(test::file_from_bytes(test::build_file(ts)));
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->family, "flux2-klein-4b");
}

TEST(FamilyDetection, NamesOfTwoArchitecturesAreMalformed) {
  std::vector<Tensor> ts = {
      {"transformer.transformer_blocks.0.norm1.linear.lora_A.weight", {2, 8}, test::random_values(16, 1)},
      {"transformer.transformer_blocks.0.norm1.linear.lora_B.weight", {48, 2}, test::random_values(96, 2)},
      {"transformer.double_stream_modulation_img.linear.lora_A.weight", {2, 8}, test::random_values(16, 3)},
      {"transformer.double_stream_modulation_img.linear.lora_B.weight", {48, 2}, test::random_values(96, 4)}};
  auto m = load(test::file_from_bytes(test::build_file(ts)));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("malformed"), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find("norm1.linear"), std::string::npos) << m.error().message;
}

TEST(FamilyDetection, Flux2BiasDeltasHaveNoTarget) {
  auto spec = tiny2("ai-toolkit");
  spec.bias = true;
  EXPECT_FALSE(generate_lora(spec).ok()) << "the generator refuses what FLUX.2 cannot hold";
  std::vector<Tensor> ts = {
      {"diffusion_model.double_blocks.0.img_attn.proj.lora_A.weight", {2, 12}, test::random_values(24, 1)},
      {"diffusion_model.double_blocks.0.img_attn.proj.lora_B.weight", {12, 2}, test::random_values(24, 2)},
      {"diffusion_model.double_blocks.0.img_attn.proj.lora_B.bias", {12}, test::random_values(12, 3)},
      {"diffusion_model.single_stream_modulation.lin.lora_A.weight", {2, 12}, test::random_values(24, 4)},
      {"diffusion_model.single_stream_modulation.lin.lora_B.weight", {36, 2}, test::random_values(72, 5)}};
  auto m = load(test::file_from_bytes(test::build_file(ts)));
  ASSERT_TRUE(m.ok()) << m.error().message;
  bool found = false;
  for (const auto& f : m->findings)
    found |= f.id == "lora.bias.no_target" && f.severity == Severity::kError &&
             f.tensor == "diffusion_model.double_blocks.0.img_attn.proj.lora_B.bias";
  EXPECT_TRUE(found);
}

// ---- convert both ways, every style, against an independent dense check ----

TEST(Families, Flux2ConvertsToEveryStyleAndBackExactly) {
  for (const char* dialect : {"diffusers", "kohya", "comfy", "ai-toolkit", "bfl", "fal"}) {
    for (bool partial : {false, true}) {
      GenSpec s = tiny2(dialect);
      s.mixed_ranks = true;
      if (partial) s.skip = {"attn.to_k", "img_attn.qkv"};  // diffusers: k absent; BFL: no img qkv
      if (std::string(dialect) == "kohya" || std::string(dialect) == "comfy") s.per_part_alpha = true, s.alpha = 3;
      auto file = test::generated(s);
      auto in = load(file);
      ASSERT_TRUE(in.ok()) << dialect << ": " << in.error().message;
      EXPECT_EQ(in->family, "flux2-tiny");
      for (Style st : {Style::kKohya, Style::kComfy, Style::kPeft, Style::kBfl, Style::kDiffusers}) {
        auto r = verify_as(file, st);
        EXPECT_TRUE(r.pass) << dialect << " -> " << style_name(st) << ": " << r.verdict;
        // The independent check: dense ΔW of every target of the re-read conversion.
        ConvertOptions co;
        co.to = st == Style::kDiffusers ? OutputLayout::kDiffusers : OutputLayout::kBfl;
        co.style = st;
        co.dtype = st::DType::kF64;
        auto c = convert_and_reread(*in, co);
        ASSERT_TRUE(c.ok()) << c.error().message;
        const LoraModel* out = &c->out.model;
        for (const auto& t : flux::bfl_targets(in->layout)) {
          std::vector<const Part*> a, b;
          for (const auto& p : in->parts)
            if (p.target == t.name) a.push_back(&p);
          for (const auto& p : out->parts)
            if (p.target == t.name) b.push_back(&p);
          if (a.empty() && b.empty()) continue;
          Eigen::MatrixXd da = verify::dense_delta(a, t.rows, t.cols), db = verify::dense_delta(b, t.rows, t.cols);
          EXPECT_LE((da - db).norm(), 1e-6 * std::max(1.0, da.norm())) << dialect << " -> " << style_name(st) << " " << t.name;
        }
      }
    }
  }
}

TEST(Families, Flux2RoundTripThroughTheOtherLayoutIsExact) {
  auto file = test::generated(tiny2("ai-toolkit"));
  auto in = load(file);
  ASSERT_TRUE(in.ok());
  ConvertOptions there;
  there.to = OutputLayout::kDiffusers;
  there.style = Style::kDiffusers;
  auto a = convert_and_reread(*in, there);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ConvertOptions back;
  back.style = Style::kPeft;
  auto b = convert_and_reread(a->out.model, back);
  ASSERT_TRUE(b.ok()) << b.error().message;
  auto cmp = verify::compare(*in, b->out.model);
  ASSERT_TRUE(cmp.ok());
  EXPECT_TRUE(cmp->all_equivalent);
  EXPECT_EQ(cmp->worst_relative_error, 0.0);
}

// ---- the peer bugs only a numerical check sees ----

// diffusers' FLUX.2 LoRA converter renames final_layer.adaLN_modulation.1 to norm_out.linear
// without swapping the halves (DF-1); its checkpoint converter does swap.
TEST(Families, CompareCatchesTheDiffusersFlux2NormOutBug) {
  const uint64_t H = 12, r = 2;
  auto A = test::random_values(r * H, 1), B = test::random_values(2 * H * r, 2);
  auto qa = test::random_values(r * H, 3), qb = test::random_values(3 * H * r, 4);
  std::vector<Tensor> src = {{"diffusion_model.final_layer.adaLN_modulation.1.lora_A.weight", {r, H}, A},
                             {"diffusion_model.final_layer.adaLN_modulation.1.lora_B.weight", {2 * H, r}, B},
                             {"diffusion_model.single_stream_modulation.lin.lora_A.weight", {r, H}, qa},
                             {"diffusion_model.single_stream_modulation.lin.lora_B.weight", {3 * H, r}, qb}};
  auto make = [&](bool swapped) {
    return std::vector<Tensor>{{"transformer.norm_out.linear.lora_A.weight", {r, H}, A},
                               {"transformer.norm_out.linear.lora_B.weight", {2 * H, r}, swapped ? swap_halves(B, 2 * H, r) : B},
                               {"transformer.single_stream_modulation.linear.lora_A.weight", {r, H}, qa},
                               {"transformer.single_stream_modulation.linear.lora_B.weight", {3 * H, r}, qb}};
  };
  auto source = test::file_from_bytes(test::build_file(src));
  report::PipelineOptions o;
  auto right = report::run_compare(source, test::file_from_bytes(test::build_file(make(true))), o);
  ASSERT_TRUE(right.ok()) << right.error().message;
  EXPECT_TRUE(right->pass) << right->verdict;
  auto wrong = report::run_compare(source, test::file_from_bytes(test::build_file(make(false))), o);
  ASSERT_TRUE(wrong.ok()) << wrong.error().message;
  EXPECT_FALSE(wrong->pass);
  for (const auto& m : wrong->modules)
    EXPECT_EQ(m.status == "equivalent", m.target != "final_layer.adaLN_modulation.1") << m.target;
}

TEST(Families, CompareCatchesAGateUpExchange) {
  // FLUX.2 img_mlp.0 / ff.linear_in rows: [0, M) gate, [M, 2M) up, in both namings.
  const uint64_t H = 12, M = 36, r = 2;
  auto A = test::random_values(r * H, 1), B = test::random_values(2 * M * r, 2);
  auto ma = test::random_values(r * H, 3), mb = test::random_values(6 * H * r, 4);
  auto file = [&](const std::string& prefix, const std::string& module, std::vector<double> b) {
    return test::file_from_bytes(test::build_file(
        {{prefix + module + ".lora_A.weight", {r, H}, A},
         {prefix + module + ".lora_B.weight", {2 * M, r}, std::move(b)},
         {prefix + "double_stream_modulation_img.lin" + (prefix == "transformer." ? std::string("ear") : "") + ".lora_A.weight", {r, H}, ma},
         {prefix + "double_stream_modulation_img.lin" + (prefix == "transformer." ? std::string("ear") : "") + ".lora_B.weight", {6 * H, r}, mb}}));
  };
  auto source = file("diffusion_model.", "double_blocks.0.img_mlp.0", B);
  report::PipelineOptions o;
  auto right = report::run_compare(source, file("transformer.", "transformer_blocks.0.ff.linear_in", B), o);
  ASSERT_TRUE(right.ok()) << right.error().message;
  EXPECT_TRUE(right->pass) << right->verdict;
  auto wrong = report::run_compare(source, file("transformer.", "transformer_blocks.0.ff.linear_in", swap_halves(B, 2 * M, r)), o);
  ASSERT_TRUE(wrong.ok());
  EXPECT_FALSE(wrong->pass);
}

// ---- Chroma and Flex.1 ----

TEST(Families, ChromaApproximatorMapsOneToOne) {
  auto file = test::generated(real("chroma", "kohya"));
  for (Style st : {Style::kDiffusers, Style::kComfy}) {
    auto r = verify_as(file, st);
    EXPECT_TRUE(r.pass) << r.verdict;
    bool approx = false;
    for (const auto& m : r.modules) approx |= m.target == "distilled_guidance_layer.layers.3.out_layer" && m.strategy == "rename";
    EXPECT_TRUE(approx);
  }
}

TEST(Families, Flux1ModulationHasNoTargetOnChroma) {
  auto file = test::generated(real("flux1", "diffusers"));
  auto m = load(file, flux::find_family("chroma"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  int no_target = 0;
  for (const auto& f : m->findings)
    if (f.id == "lora.module.unknown" && f.message.find("no target in Chroma") != std::string::npos) ++no_target;
  EXPECT_GT(no_target, 0);
  for (const auto& p : m->parts) EXPECT_EQ(p.target.find("_mod.lin"), std::string::npos) << p.target;
}

TEST(Families, Flex1TakesItsSingleBlockCountFromTheFile) {
  GenSpec s = real("flux1", "kohya");
  s.max_double = 8;
  s.max_single = 5;
  auto m = load(test::generated(s), flux::find_family("flex1"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->family, "flex1");
  EXPECT_EQ(m->layout.double_blocks, 8);
  EXPECT_EQ(m->layout.single_blocks, 5);
  // A double block Flex.1 does not have is reported, never placed.
  s.max_double = 10;
  auto more = load(test::generated(s), flux::find_family("flex1"));
  ASSERT_TRUE(more.ok());
  bool reported = false;
  for (const auto& f : more->findings) reported |= f.id == "lora.module.unknown" && f.tensor.find("double_blocks_9") != std::string::npos;
  EXPECT_TRUE(reported);
}

// The loaders' view of a FLUX.2 output uses their FLUX.2 facts (and says unknown where there
// are none), also when the in-memory check verifies the output group by group.
TEST(Families, LoaderVerdictsOnFlux2OutputsUseTheFlux2Facts) {
  auto r = verify_as(test::generated(tiny2("ai-toolkit")), Style::kKohya);
  ASSERT_FALSE(r.loaders.empty());
  for (const auto& l : r.loaders) {
    ASSERT_TRUE(l.output) << l.loader;
    if (l.loader == "diffusers") {
      EXPECT_EQ(l.input.outcome, "drops") << l.input.message;  // DF-1: norm_out renamed without the swap
      EXPECT_NE(l.input.message.find("final_layer.adaLN_modulation.1"), std::string::npos) << l.input.message;
      EXPECT_EQ(l.output->outcome, "drops") << l.output->message;  // DF-4: kohya converter lacks rows
    } else if (l.loader == "comfyui") {
      // Measured (data/loaders/comfyui-a125cd84b054-flux2.json): ComfyUI a125cd84 takes a FLUX.2
      // checkpoint for FLUX.1 and cannot build the model.
      EXPECT_EQ(l.output->outcome, "rejects") << l.output->message;
      EXPECT_NE(l.output->message.find("vec_in_dim"), std::string::npos) << l.output->message;
    } else if (l.loader == "invokeai") {
      // Measured: InvokeAI's install probe takes no kohya FLUX.2 file with top-level modules.
      EXPECT_EQ(l.output->outcome, "rejects") << l.output->message;
      EXPECT_NE(l.output->message.find("NotAMatchError"), std::string::npos) << l.output->message;
    } else if (l.loader == "sd-scripts" || l.loader == "forge") {
      EXPECT_EQ(l.output->outcome, "unknown") << l.loader << ": " << l.output->message;
      EXPECT_NE(l.output->message.find("FLUX.2"), std::string::npos) << l.output->message;
    }
  }
}

// lora-verify records the family it read a file as in its outputs (lora_verify.model): that
// record settles a choice between families that all fit, and never overrides the shapes.
TEST(FamilyDetection, TheRecordedFamilySettlesOnlyAChoiceAmongFittingOnes) {
  auto ts = attention_only(3072, 5);
  auto with = [&](const std::string& m) { return load(test::file_from_bytes(test::build_file(ts, {{"lora_verify.model", m}}))); };
  auto k4 = with("flux2-klein-4b");
  ASSERT_TRUE(k4.ok()) << k4.error().message;
  EXPECT_EQ(k4->family, "flux2-klein-4b");
  auto f1 = with("flux1");
  ASSERT_TRUE(f1.ok());
  EXPECT_EQ(f1->family, "flux1");
  EXPECT_FALSE(with("flux2-dev").ok()) << "flux2-dev does not fit width 3072: still ambiguous";
  // The converter writes the record, so its own outputs read back as the same family.
  auto in = load(test::file_from_bytes(test::build_file(ts)), flux::find_family("flux2-klein-4b"));
  ASSERT_TRUE(in.ok());
  ConvertOptions co;
  auto conv = convert(*in, co);
  ASSERT_TRUE(conv.ok());
  EXPECT_EQ(conv->metadata.at("lora_verify.model"), "flux2-klein-4b");
  auto back = load(test::file_from_bytes(st::serialize(tensors_to_write(*conv), conv->metadata).value()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->family, "flux2-klein-4b");
}
