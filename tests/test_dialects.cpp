// The dialect table: every row is read back as itself, by the parser and by the loader, from
// what the generator and the converter write with it.
#include <gtest/gtest.h>

#include <set>

#include "lora/converter.h"
#include "lora/dialects.h"
#include "lora/generate.h"
#include "lora/keys.h"
#include "lora/reread.h"
#include "support/lora_support.h"

using namespace lv;

TEST(Dialects, EveryRowHasAUniqueNameThatFindsIt) {
  std::set<std::string_view> names;
  for (const DialectRow& r : dialect_rows()) {
    EXPECT_TRUE(names.insert(r.name).second) << r.name;
    EXPECT_EQ(dialect_from_name(r.name), r.id) << r.name;
    EXPECT_EQ(dialect_name(r.id), r.name);
  }
  EXPECT_FALSE(dialect_from_name("Kohya").has_value());
}

TEST(Dialects, ARefinedDialectSharesItsBasesPrefixAndNaming) {
  for (const DialectRow& r : dialect_rows()) {
    if (r.refines == Dialect::kNone) continue;
    const DialectRow& base = dialect_row(r.refines);
    EXPECT_EQ(base.refines, Dialect::kNone) << r.name << " refines a refined dialect";
    EXPECT_EQ(base.naming, r.naming) << r.name;
    EXPECT_TRUE(base.prefix == r.prefix || base.bare_prefix_read) << r.name;
    EXPECT_NE(base.factors, r.factors) << r.name << " has its base's suffixes, so nothing tells them apart";
    EXPECT_EQ(refine_dialect(r.refines, r.factors), r.id) << r.name;
  }
}

TEST(Dialects, EveryKeyAWriterSpellsIsReadAsItsDialect) {
  for (const DialectRow& r : dialect_rows()) {
    if (r.id == Dialect::kNone || r.naming == Naming::kXlabs) continue;
    const Role role = r.factors == SuffixFamily::kLycoris ? Role::kLokrW1 : Role::kDown;
    const std::string key = module_key(r, "double_blocks.0.img_attn.proj", "transformer_blocks.0.attn.to_out.0") +
                            std::string(suffix_for(role, r.factors));
    auto parsed = parse_key(key);
    ASSERT_TRUE(parsed.has_value()) << r.name << ": " << key;
    EXPECT_EQ(parsed->dialect, (DialectTag{r.id, false})) << key;
    EXPECT_EQ(parsed->naming, r.naming) << key;
    EXPECT_EQ(parsed->role, role) << key;
  }
}

TEST(Dialects, WhatTheGeneratorWritesLoadsAsThatDialect) {
  int generated = 0;
  for (const DialectRow& r : dialect_rows()) {
    if (!r.generated.writes) continue;
    GenSpec spec;
    spec.layout = flux::Layout::tiny();
    spec.dialect = std::string(r.name);
    spec.alpha = r.generated.alpha ? 2 : 0;
    spec.bias = r.generated.bias;
    LoraModel m = test::load_or_die(test::generated(spec), spec.layout);
    EXPECT_EQ(m.dialect, r.name);  // the factors' dialect (an .alpha alone may read as its base's)
    ++generated;
  }
  EXPECT_EQ(generated, 10);
}

TEST(Dialects, EveryStyleWritesTheDialectItNames) {
  GenSpec spec;
  spec.layout = flux::Layout::tiny();
  spec.alpha = 2;
  LoraModel in = test::load_or_die(test::generated(spec), spec.layout);
  for (const StyleRow& s : style_rows()) {
    ConvertOptions opt;
    opt.style = s.style;
    opt.to = style_layout(s.style);
    auto c = convert_and_reread(in, opt);
    ASSERT_TRUE(c.ok()) << style_name(s.style) << ": " << c.error().message;
    EXPECT_EQ(c->out.model.dialect, (DialectTag{s.writes, false})) << style_name(s.style);
    const auto& ts = c->conversion.tensors;
    const bool alpha = std::any_of(ts.begin(), ts.end(), [](const OutTensor& t) { return t.name.ends_with(".alpha"); });
    EXPECT_EQ(alpha, s.alpha_tensors) << style_name(s.style);
    EXPECT_EQ(style_from_name(style_name(s.style)), s.style);
  }
}
