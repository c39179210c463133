// The safetensors container: one test per validation rule and per bug class of
// docs/safetensors.md, round trips, the writer's golden bytes, and exact dtype conversions.
#include <gtest/gtest.h>

#include <random>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "safetensors/header_parser.h"
#include "safetensors/reader.h"
#include "safetensors/writer.h"
#include "support/lora_support.h"

using namespace lv::st;

namespace {

// Length prefix `n` (little-endian u64) followed by the header text, nothing else.
std::vector<uint8_t> file_u64len(const std::string& header, uint64_t n) {
  std::vector<uint8_t> out(8 + header.size());
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

// A file from a readable spec: header text (padded unless told otherwise), data bytes,
// and an optional forced length prefix.
std::vector<uint8_t> file(std::string header, size_t data_bytes = 0, bool pad = true, int64_t forced_len = -1) {
  if (pad)
    while (header.size() % 8) header += ' ';
  uint64_t n = forced_len >= 0 ? static_cast<uint64_t>(forced_len) : header.size();
  std::vector<uint8_t> out = file_u64len(header, n);
  out.resize(out.size() + data_bytes, 0);
  return out;
}

std::string tensor(const std::string& name, const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

// Expects rejection with a message containing `needle` (and the file name).
void rejects(const std::vector<uint8_t>& bytes, const std::string& needle) {
  auto f = SafetensorsFile::from_bytes(bytes, "case.safetensors");
  ASSERT_FALSE(f.ok()) << "accepted; expected: " << needle;
  EXPECT_EQ(f.error().code, lv::ErrorCode::kBadInput);
  EXPECT_NE(f.error().message.find(needle), std::string::npos) << f.error().message;
  EXPECT_EQ(f.error().message.rfind("case.safetensors: ", 0), 0u) << f.error().message;
}

const std::string kOne = tensor("a", "F32", "[2]", "[0,8]");

}  // namespace

TEST(SafetensorsParse, AcceptsAValidFile) {
  auto f = SafetensorsFile::from_bytes(file("{" + kOne + "}", 8), "ok");
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(f->tensors()[0].numel, 2u);
  EXPECT_EQ(f->tensors()[0].nbytes, 8u);
  EXPECT_TRUE(f->find("a"));
  EXPECT_FALSE(f->find("b"));
}

TEST(SafetensorsParse, AcceptsScalarsZeroSizedTensorsNullMetadataAndUnknownFields) {
  std::string h = "{\"__metadata__\":null," + tensor("s", "BF16", "[]", "[0,2]") + "," + tensor("z", "F32", "[0,3]", "[2,2]") +
                  ",\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3],\"extra\":{\"x\":[1,2]}}}";
  auto f = SafetensorsFile::from_bytes(file(h, 3), "ok");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->tensors().size(), 3u);
  EXPECT_FALSE(f->has_metadata());
}

TEST(SafetensorsParse, AcceptsUnpaddedHeadersAndJsonWhitespace) {
  auto f = SafetensorsFile::from_bytes(file(" \t\r\n{" + kOne + "}\n", 8, /*pad=*/false), "ok");
  EXPECT_TRUE(f.ok()) << f.error().message;
}

TEST(SafetensorsParse, RejectsShortFiles) { rejects({1, 0, 0}, "shorter than the 8-byte header length"); }
TEST(SafetensorsParse, RejectsHeaderLengthThatWraps) { rejects(file_u64len("{}", UINT64_MAX), "exceeds the limit"); }
TEST(SafetensorsParse, RejectsHeaderLengthOverTheLimit) { rejects(file_u64len("{}", 100'000'001), "exceeds the limit"); }
TEST(SafetensorsParse, AJsonFileIsNamedAsNotASafetensorsFile) {
  std::string json = "{\"verdict\": \"pass\", \"modules\": []}\n";
  rejects(std::vector<uint8_t>(json.begin(), json.end()), "not a safetensors file: it starts with '{' like a JSON file");
  std::string text = "hello, this is a text file\n";
  rejects(std::vector<uint8_t>(text.begin(), text.end()), "not a safetensors file: it starts with text");
}
TEST(SafetensorsParse, RejectsHeaderRunningPastTheEnd) { rejects(file("{}", 0, false, 40), "runs past the end"); }
TEST(SafetensorsParse, RejectsBom) { rejects(file("\xef\xbb\xbf{" + kOne + "}", 8), "byte order mark"); }
TEST(SafetensorsParse, RejectsRawNul) { rejects(file("{" + kOne + "}" + std::string(1, '\0'), 8, false), "NUL"); }
TEST(SafetensorsParse, RejectsNulPaddedHeader) { rejects(file("{" + kOne + "}" + std::string(6, '\0'), 8, false), "NUL"); }
TEST(SafetensorsParse, RejectsOverlongUtf8) { rejects(file("{" + tensor("\xc0\xaf", "U8", "[1]", "[0,1]") + "}", 1), "UTF-8"); }
TEST(SafetensorsParse, RejectsSurrogateUtf8) { rejects(file("{" + tensor("\xed\xa0\x80", "U8", "[1]", "[0,1]") + "}", 1), "UTF-8"); }
TEST(SafetensorsParse, RejectsTruncatedUtf8) { rejects(file("{" + tensor("a\xe2\x82", "U8", "[1]", "[0,1]") + "}", 1), "UTF-8"); }
TEST(SafetensorsParse, RejectsRootThatIsNotAnObject) { rejects(file("[1]"), "root must be an object"); }
TEST(SafetensorsParse, RejectsSyntaxErrors) { rejects(file("{\"a\":"), "JSON syntax error"); }
TEST(SafetensorsParse, RejectsTrailingGarbageAfterTheObject) { rejects(file("{" + kOne + "}x", 8), "JSON syntax error"); }
TEST(SafetensorsParse, RejectsDeepNesting) {
  rejects(file("{\"a\":{\"x\":" + std::string(200, '[') + std::string(200, ']') + "}}"), "nested deeper than 128");
}
TEST(SafetensorsParse, RejectsDuplicateTensorNames) { rejects(file("{" + kOne + "," + kOne + "}", 8), "appears twice"); }
TEST(SafetensorsParse, RejectsDuplicateMetadata) {
  rejects(file("{\"__metadata__\":{},\"__metadata__\":{}," + kOne + "}", 8), "__metadata__ appears twice");
}
TEST(SafetensorsParse, RejectsDuplicateMetadataKeys) { rejects(file("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"), "appears twice"); }
TEST(SafetensorsParse, RejectsMetadataThatIsNotStringToString) {
  rejects(file("{\"__metadata__\":{\"k\":1}}"), "must be a string");
  rejects(file("{\"__metadata__\":[]}"), "__metadata__ must be an object or null, not an array");
  rejects(file("{\"__metadata__\":\"x\"}"), "__metadata__ must be an object or null");
}
TEST(SafetensorsParse, RejectsATensorNamedMetadataInsideAnEntry) {
  rejects(file("{\"__metadata__\":{\"dtype\":{}}}"), "must be a string, not an object");
}
TEST(SafetensorsParse, RejectsUnknownDtype) { rejects(file("{" + tensor("a", "f32", "[1]", "[0,4]") + "}", 4), "unknown dtype \"f32\""); }
TEST(SafetensorsParse, RejectsMissingFields) {
  rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "missing field data_offsets");
  rejects(file("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "missing field shape");
  rejects(file("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "missing field dtype");
}
TEST(SafetensorsParse, RejectsDataOffsetsOfOneOrThreeNumbers) {
  rejects(file("{" + tensor("a", "F32", "[1]", "[4]") + "}", 4), "exactly two numbers");
  rejects(file("{" + tensor("a", "F32", "[1]", "[0,4,4]") + "}", 4), "exactly two numbers");
}
TEST(SafetensorsParse, RejectsBadNumbers) {
  rejects(file("{" + tensor("a", "U8", "[-1]", "[0,1]") + "}", 1), "negative");
  rejects(file("{" + tensor("a", "U8", "[-0]", "[0,1]") + "}", 1), "negative");
  rejects(file("{" + tensor("a", "U8", "[1.0]", "[0,1]") + "}", 1), "1.0");
  rejects(file("{" + tensor("a", "U8", "[1e0]", "[0,1]") + "}", 1), "1e0");
  rejects(file("{" + tensor("a", "U8", "[01]", "[0,1]") + "}", 1), "JSON syntax error");
  rejects(file("{" + tensor("a", "U8", "[18446744073709551616]", "[0,1]") + "}", 1), "18446744073709551616");
}
TEST(SafetensorsParse, RejectsControlCharactersAndEmptyNames) {
  rejects(file("{" + tensor("a\\u0000b", "U8", "[1]", "[0,1]") + "}", 1), "control character 0x00");
  rejects(file("{" + tensor("a\\nb", "U8", "[1]", "[0,1]") + "}", 1), "control character 0x0a");
  rejects(file("{" + tensor("", "U8", "[1]", "[0,1]") + "}", 1), "empty name");
}
TEST(SafetensorsParse, RejectsShapeProductThatWrapsToZero) {
  rejects(file("{" + tensor("a", "F32", "[4294967296,4294967296]", "[0,0]") + "}"), "more than 2^64 elements");
}
TEST(SafetensorsParse, RejectsShapeAndByteRangeMismatch) {
  rejects(file("{" + tensor("a", "F32", "[1000,1000]", "[0,4]") + "}", 4), "hold 4 bytes but shape [1000, 1000] of F32 needs 4000000 bytes");
}
TEST(SafetensorsParse, RejectsSubByteTotals) { rejects(file("{" + tensor("a", "F4", "[3]", "[0,1]") + "}", 1), "not a whole number of bytes"); }
TEST(SafetensorsParse, AcceptsSubByteDtypesOfWholeBytes) {
  auto f = SafetensorsFile::from_bytes(file("{" + tensor("a", "F4", "[4]", "[0,2]") + "," + tensor("b", "F6_E2M3", "[4]", "[2,5]") + "}", 5), "ok");
  EXPECT_TRUE(f.ok()) << f.error().message;
}
TEST(SafetensorsParse, RejectsEndBeforeBegin) { rejects(file("{" + tensor("a", "U8", "[0]", "[4,0]") + "}"), "end before they begin"); }
TEST(SafetensorsParse, RejectsGaps) { rejects(file("{" + tensor("a", "U8", "[1]", "[1,2]") + "}", 2), "leave a gap"); }
TEST(SafetensorsParse, RejectsOverlap) {
  rejects(file("{" + tensor("a", "U8", "[2]", "[0,2]") + "," + tensor("b", "U8", "[2]", "[1,3]") + "}", 3), "overlap");
}
TEST(SafetensorsParse, RejectsAliasingRanges) {
  rejects(file("{" + tensor("a", "U8", "[2]", "[0,2]") + "," + tensor("b", "U8", "[2]", "[0,2]") + "}", 2), "overlap");
}
TEST(SafetensorsParse, RejectsTrailingBytes) { rejects(file("{" + kOne + "}", 9), "trailing bytes"); }
TEST(SafetensorsParse, RejectsTruncation) { rejects(file("{" + kOne + "}", 7), "truncated"); }
TEST(SafetensorsParse, RejectsOffsetsNearTwoToThe64) {
  rejects(file("{" + tensor("a", "U8", "[1]", "[18446744073709551615,0]") + "}"), "end before they begin");
}
TEST(SafetensorsParse, PathLikeNamesAreJustNames) {
  auto f = SafetensorsFile::from_bytes(file("{" + tensor("../../x", "U8", "[1]", "[0,1]") + "}", 1), "ok");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->tensors()[0].name, "../../x");
}
TEST(SafetensorsParse, AllTwentyTwoDtypesAreRecognisedAndSized) {
  const unsigned bits[] = {8, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64};
  for (int i = 0; i < kDTypeCount; ++i) {
    auto d = static_cast<DType>(i);
    EXPECT_EQ(dtype_bits(d), bits[i]) << dtype_name(d);
    EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
  }
  EXPECT_FALSE(dtype_from_name("bf16"));
}

TEST(SafetensorsOpen, MissingFileIsCannotOpen) {
  auto f = SafetensorsFile::open("/nonexistent/x.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, lv::ErrorCode::kCannotOpen);
}

TEST(SafetensorsOpen, EmptyFileIsRejectedWithoutMapping) {
  std::string dir = lv::test::temp_dir();
  std::ofstream(dir + "/empty.safetensors").close();
  auto f = SafetensorsFile::open(dir + "/empty.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, lv::ErrorCode::kBadInput);
  std::filesystem::remove_all(dir);
}

TEST(SafetensorsWrite, GoldenBytesOfOneScalar) {
  float one = 1.0f;
  std::vector<uint8_t> d(4);
  std::memcpy(d.data(), &one, 4);
  auto bytes = serialize({{"x", DType::kF32, {}, d}}, {});
  ASSERT_TRUE(bytes.ok());
  // {"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}} is 53 bytes, padded to 56.
  std::string header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}   ";
  std::vector<uint8_t> expected = {56, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), header.begin(), header.end());
  expected.insert(expected.end(), {0x00, 0x00, 0x80, 0x3f});
  EXPECT_EQ(*bytes, expected);
}

TEST(SafetensorsWrite, GoldenOrderMetadataFirstThenDtypeDescendingThenName) {
  std::vector<uint8_t> b2(2), b4(4), b1(1);
  auto bytes = serialize({{"b", DType::kBF16, {1}, b2}, {"a", DType::kU8, {1}, b1}, {"c", DType::kF32, {1}, b4}, {"a2", DType::kBF16, {1}, b2}},
                         {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok());
  std::string h(bytes->begin() + 8, bytes->begin() + 8 + static_cast<long>((*bytes)[0]));
  EXPECT_EQ(h,
            "{\"__metadata__\":{\"format\":\"pt\"},\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"a2\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]},\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[6,8]},"
            "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[8,9]}}  ");
  EXPECT_EQ(h.size() % 8, 0u);
}

TEST(SafetensorsWrite, EscapesControlCharactersAndQuotes) {
  std::vector<uint8_t> b(1);
  auto bytes = serialize({{"q\"\\", DType::kU8, {1}, b}}, {{"k", std::string("a\tb\x01", 4)}});
  ASSERT_TRUE(bytes.ok());
  std::string all(bytes->begin(), bytes->end());
  EXPECT_NE(all.find("\"a\\tb\\u0001\""), std::string::npos);
  EXPECT_NE(all.find("\"q\\\"\\\\\""), std::string::npos);
  auto back = SafetensorsFile::from_bytes(*bytes, "x");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->metadata().at("k"), std::string("a\tb\x01", 4));
}

TEST(SafetensorsWrite, RefusesDuplicatesBadUtf8AndWrongSizes) {
  std::vector<uint8_t> b(4);
  EXPECT_FALSE(serialize({{"a", DType::kF32, {1}, b}, {"a", DType::kF32, {1}, b}}, {}).ok());
  EXPECT_FALSE(serialize({{"\xff", DType::kF32, {1}, b}}, {}).ok());
  EXPECT_FALSE(serialize({{"__metadata__", DType::kF32, {1}, b}}, {}).ok());
  EXPECT_FALSE(serialize({{"a", DType::kF32, {2}, b}}, {}).ok());
  EXPECT_FALSE(serialize({}, {{"k", "\xc0\xaf"}}).ok());
}

TEST(SafetensorsWrite, RoundTripReproducesTensorsAndBytes) {
  std::vector<uint8_t> a(12), c(2);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7);
  c = {1, 2};
  auto bytes = serialize({{"w", DType::kF32, {3}, a}, {"v", DType::kBF16, {}, c}}, {{"k", "v"}});
  ASSERT_TRUE(bytes.ok());
  auto f = SafetensorsFile::from_bytes(*bytes, "x");
  ASSERT_TRUE(f.ok());
  std::vector<TensorToWrite> again;
  for (const auto& t : f->tensors()) again.push_back({t.name, t.dtype, t.shape, t.bytes()});
  auto bytes2 = serialize(again, f->metadata());
  ASSERT_TRUE(bytes2.ok());
  EXPECT_EQ(*bytes, *bytes2);
  EXPECT_EQ(std::memcmp(f->find("w")->data, a.data(), 12), 0);
}

TEST(SafetensorsWrite, AStagedOutputReadsBackBeforeItsFsyncAndLandsOnCommit) {
  // stage_file returns while the temporary's fsync runs in the background: its bytes read
  // back at once (convert verifies them meanwhile), each tensor is reported written in file
  // order, the destination is untouched until commit(), and commit() puts exactly them there.
  const std::string dir = lv::test::temp_dir(), out = dir + "/out.safetensors";
  std::ofstream(out) << "previous";
  std::vector<uint8_t> a(4096 * 3), c = {1, 2};
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 13);
  const std::vector<TensorToWrite> ts = {{"w", DType::kF32, {a.size() / 4}, a}, {"v", DType::kBF16, {}, c}};
  std::vector<size_t> written;
  auto pending = stage_file(out, ts, {{"k", "v"}}, {}, false, [&](size_t i) { written.push_back(i); });
  ASSERT_TRUE(pending.ok()) << pending.error().message;
  const auto want = serialize(ts, {{"k", "v"}});
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(written, (std::vector<size_t>{0, 1}));  // F32 before BF16: the writer's order
  auto early = SafetensorsFile::open(pending->temporary());
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(std::memcmp(early->find("w")->data, a.data(), a.size()), 0);
  EXPECT_EQ(lv::test::read_file(out), "previous");
  const std::string tmp = pending->temporary();
  ASSERT_TRUE(std::filesystem::exists(tmp));
  ASSERT_TRUE(pending->commit().ok());
  const std::string got = lv::test::read_file(out);
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.end()), *want);
  EXPECT_FALSE(std::filesystem::exists(tmp));
}

TEST(SafetensorsWrite, AtomicWriteNeverOverwritesAnInputAndLeavesNoTemporaries) {
  std::string dir = lv::test::temp_dir();
  std::vector<uint8_t> b(4);
  ASSERT_TRUE(write_file(dir + "/in.safetensors", {{"a", DType::kF32, {1}, b}}, {}, {}).ok());
  auto refused = write_file(dir + "/./in.safetensors", {{"a", DType::kF32, {1}, b}}, {}, {dir + "/in.safetensors"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, lv::ErrorCode::kCannotCreate);
  std::filesystem::create_symlink(dir + "/in.safetensors", dir + "/link.safetensors");
  EXPECT_FALSE(write_file(dir + "/link.safetensors", {{"a", DType::kF32, {1}, b}}, {}, {dir + "/in.safetensors"}).ok());
  auto bad_dir = write_bytes_atomic(dir + "/no/such/dir/x", b, {});
  ASSERT_FALSE(bad_dir.ok());
  EXPECT_EQ(bad_dir.error().code, lv::ErrorCode::kCannotCreate);
  // The message names the directory, the reason and the fix.
  EXPECT_NE(bad_dir.error().message.find("cannot create a temporary file in the directory " + dir + "/no/such/dir: No such file"),
            std::string::npos) << bad_dir.error().message;
  EXPECT_NE(bad_dir.error().message.find("must exist and be writable"), std::string::npos) << bad_dir.error().message;
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.path().string().find(".tmp.") == std::string::npos;
  EXPECT_EQ(files, 2);
  for (const auto& e : std::filesystem::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(SafetensorsWrite, ReplacingAFileKeepsItsMode) {
  std::string dir = lv::test::temp_dir();
  std::vector<uint8_t> b(4, 7);
  const std::string path = dir + "/out.bin";
  ASSERT_TRUE(write_bytes_atomic(path, b, {}).ok());
  std::filesystem::permissions(path, std::filesystem::perms(0640));
  ASSERT_TRUE(write_bytes_atomic(path, b, {}).ok());
  EXPECT_EQ(static_cast<int>(std::filesystem::status(path).permissions()), 0640);
  std::filesystem::permissions(path, std::filesystem::perms(0600));
  ASSERT_TRUE(write_file(path, {{"a", DType::kF32, {1}, b}}, {}, {}).ok());
  EXPECT_EQ(static_cast<int>(std::filesystem::status(path).permissions()), 0600);
  std::filesystem::remove_all(dir);
}

TEST(SafetensorsWrite, ASymlinkedOutputIsWrittenThroughTheLink) {
  std::string dir = lv::test::temp_dir();
  std::filesystem::create_directory(dir + "/real");
  const std::string target = dir + "/real/out.bin", link = dir + "/link.bin";
  { std::ofstream(target, std::ios::binary) << "old"; }
  std::filesystem::create_symlink("real/out.bin", link);  // relative to the link's directory
  std::vector<uint8_t> b = {'n', 'e', 'w'};
  ASSERT_TRUE(write_bytes_atomic(link, b, {}).ok());
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(lv::test::read_file(target), "new");
  // A dangling link creates its target.
  std::filesystem::create_symlink(dir + "/real/fresh.bin", dir + "/dangling.bin");
  ASSERT_TRUE(write_bytes_atomic(dir + "/dangling.bin", b, {}).ok());
  EXPECT_TRUE(std::filesystem::is_symlink(dir + "/dangling.bin"));
  EXPECT_EQ(lv::test::read_file(dir + "/real/fresh.bin"), "new");
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  std::filesystem::remove_all(dir);
}

TEST(SafetensorsWrite, ASetOfFilesIsWrittenWhollyOrNotAtAll) {
  std::string dir = lv::test::temp_dir();
  { std::ofstream(dir + "/a.md") << "old a"; }
  std::filesystem::create_directory(dir + "/b.json");  // cannot be replaced by a file
  std::vector<uint8_t> b = {'n', 'e', 'w'};
  auto st = write_set_atomic({{dir + "/a.md", b}, {dir + "/b.json", b}, {dir + "/c.html", b}}, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, lv::ErrorCode::kCannotCreate);
  EXPECT_EQ(lv::test::read_file(dir + "/a.md"), "old a");
  EXPECT_FALSE(std::filesystem::exists(dir + "/c.html"));
  std::filesystem::remove(dir + "/b.json");
  ASSERT_TRUE(write_set_atomic({{dir + "/a.md", b}, {dir + "/b.json", b}, {dir + "/c.html", b}}, {}).ok());
  for (const char* f : {"/a.md", "/b.json", "/c.html"}) EXPECT_EQ(lv::test::read_file(dir + f), "new");
  for (const auto& e : std::filesystem::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Dtype, EveryF16AndBf16PatternRoundTripsThroughDouble) {
  for (DType d : {DType::kF16, DType::kBF16}) {
    for (uint32_t bits = 0; bits < 65536; ++bits) {
      uint8_t in[2] = {static_cast<uint8_t>(bits), static_cast<uint8_t>(bits >> 8)}, out[2];
      double v = 0;
      decode_to_double(d, in, 1, &v);
      encode_from_double(d, &v, 1, out);
      if (std::isnan(v)) {
        double w = 0;
        decode_to_double(d, out, 1, &w);
        ASSERT_TRUE(std::isnan(w));
        continue;
      }
      ASSERT_EQ(in[0] | in[1] << 8, out[0] | out[1] << 8) << dtype_name(d) << " pattern " << bits;
    }
  }
}

TEST(Dtype, RoundsToNearestEvenDirectlyFromDouble) {
  auto bf16 = [](double x) {
    uint8_t o[2];
    encode_from_double(DType::kBF16, &x, 1, o);
    double v;
    decode_to_double(DType::kBF16, o, 1, &v);
    return v;
  };
  EXPECT_EQ(bf16(1.0 + std::ldexp(1.0, -8)), 1.0);                                  // tie → even
  EXPECT_EQ(bf16(1.0 + 3 * std::ldexp(1.0, -8)), 1.0 + std::ldexp(1.0, -6));        // tie → even (up)
  EXPECT_EQ(bf16(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30)), 1.0 + std::ldexp(1.0, -7));  // no double rounding
  auto f16 = [](double x) {
    uint8_t o[2];
    encode_from_double(DType::kF16, &x, 1, o);
    double v;
    decode_to_double(DType::kF16, o, 1, &v);
    return v;
  };
  EXPECT_EQ(f16(65504.0), 65504.0);
  EXPECT_TRUE(std::isinf(f16(65520.0)));
  EXPECT_EQ(f16(std::ldexp(1.0, -24)), std::ldexp(1.0, -24));  // smallest subnormal
  EXPECT_EQ(f16(std::ldexp(1.0, -26)), 0.0);
}

// The fast normal-range rounding gives the bits the generic rounding gives: random doubles
// over every binade from below the subnormals to past the largest finite value, both signs,
// and the ties and near-ties of each target's mantissa.
TEST(Dtype, FastRoundingEqualsTheReference) {
  std::mt19937_64 rng(7);
  std::vector<double> xs;
  for (int e = -160; e <= 140; ++e)
    for (int k = 0; k < 600; ++k) {
      const double m = 1.0 + std::ldexp(static_cast<double>(rng() >> 12), -52);
      xs.push_back((k & 1 ? -1 : 1) * std::ldexp(m, e));
    }
  for (int man_bits : {7, 10})
    for (int e = -30; e <= 20; ++e)
      for (uint64_t m = 0; m < 64; ++m) {  // ties, and one ulp of double either side
        const double tie = std::ldexp(1.0 + std::ldexp(static_cast<double>(2 * m + 1), -(man_bits + 1)), e);
        xs.insert(xs.end(), {tie, std::nextafter(tie, 0.0), std::nextafter(tie, 1e300), -tie});
      }
  for (double special : {0.0, -0.0, 65504.0, 65519.99, 65520.0, 3.3895313892515355e38, 3.40e38, 1e300,
                         std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(),
                         std::numeric_limits<double>::denorm_min(), std::ldexp(1.0, -14), std::ldexp(1.0, -126)})
    xs.push_back(special);
  for (DType d : {DType::kBF16, DType::kF16}) {
    std::vector<uint8_t> fast(2 * xs.size()), ref(2 * xs.size());
    encode_from_double(d, xs.data(), xs.size(), fast.data());
    encode_from_double_reference(d, xs.data(), xs.size(), ref.data());
    for (size_t i = 0; i < xs.size(); ++i)
      ASSERT_TRUE(fast[2 * i] == ref[2 * i] && fast[2 * i + 1] == ref[2 * i + 1])
          << dtype_name(d) << " of " << std::hexfloat << xs[i];
  }
}

TEST(Dtype, ScaleRoundEqualsScalingThenEncoding) {
  // scale_round_16 (the converter's fold of a scale into a 16-bit factor) gives the bytes of
  // x·scale through encode_from_double and each value's error (rounded − v)/u, or refuses
  // a row with a value outside the normal range — at every offset, so that each lane and
  // the remainder of a vectorized loop are seen.
  std::mt19937_64 rng(11);
  std::vector<double> x(1000);
  for (double& v : x) {
    const double m = 1.0 + std::ldexp(static_cast<double>(rng() >> 12), -52);
    v = (rng() & 1 ? -1 : 1) * std::ldexp(m, static_cast<int>(rng() % 24) - 12);
  }
  for (DType d : {DType::kBF16, DType::kF16})
    for (double scale : {0.5, 1.0, 0.37, 3.0 / 7.0, -1.25}) {
      std::vector<double> v(x.size()), err(x.size()), back(x.size());
      std::vector<uint8_t> got(2 * x.size()), want(2 * x.size());
      ASSERT_TRUE(scale_round_16(d, x.data(), x.size(), scale, got.data(), v.data(), err.data())) << dtype_name(d);
      std::vector<double> y(x.size());
      for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale;
      encode_from_double_reference(d, y.data(), y.size(), want.data());
      decode_to_double(d, want.data(), want.size() / 2, back.data());
      ASSERT_EQ(got, want) << dtype_name(d) << " scale " << scale;
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(v[i], y[i]);
        ASSERT_EQ(err[i], (back[i] - y[i]) / dtype_unit_roundoff(d)) << i;
      }
      for (size_t at : {size_t{0}, size_t{7}, size_t{8}, size_t{999}})
        for (double bad : {0.0, 1e-45, 1e39, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
          std::vector<double> z = x;
          z[at] = bad;
          EXPECT_FALSE(scale_round_16(d, z.data(), z.size(), 1.0, got.data(), v.data(), err.data()))
              << dtype_name(d) << " " << bad << " at " << at;
        }
    }
  std::vector<uint8_t> out(8);
  std::vector<double> v(4), err(4);
  EXPECT_FALSE(scale_round_16(DType::kF32, x.data(), 4, 1.0, out.data(), v.data(), err.data()));
}

TEST(Dtype, Fp8DecodesExactly) {
  uint8_t e4m3[] = {0x38, 0x7e, 0x7f, 0x01, 0xb8};
  double v[5];
  decode_to_double(DType::kF8E4M3, e4m3, 5, v);
  EXPECT_EQ(v[0], 1.0);
  EXPECT_EQ(v[1], 448.0);
  EXPECT_TRUE(std::isnan(v[2]));
  EXPECT_EQ(v[3], std::ldexp(1.0, -9));
  EXPECT_EQ(v[4], -1.0);
  uint8_t e5m2[] = {0x3c, 0x7c, 0x7b};
  decode_to_double(DType::kF8E5M2, e5m2, 3, v);
  EXPECT_EQ(v[0], 1.0);
  EXPECT_TRUE(std::isinf(v[1]));
  EXPECT_EQ(v[2], 57344.0);
}

TEST(Dtype, UnalignedDataIsReadByValue) {
  std::vector<uint8_t> buf(9);
  float f = 3.5f;
  std::memcpy(buf.data() + 1, &f, 4);
  double v = 0;
  decode_to_double(DType::kF32, buf.data() + 1, 1, &v);
  EXPECT_EQ(v, 3.5);
}
