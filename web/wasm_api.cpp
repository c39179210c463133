// The WebAssembly side of lora-verify (embind): the same pipelines as the CLI, for the web
// page (web/page/) and for JavaScript callers (web/lora-verify.mjs wraps these).
//
// The input is placed in the module's memory once: stage_input(size) allocates the buffer
// and returns its address, JavaScript copies the file into it piece by piece, and
// verify/convert move that buffer into the reader (SafetensorsFile::from_bytes), so a large
// file is held once, not twice. Every call returns a JSON envelope, never throws:
//   {"ok":true,"pass":…,"text":"…the CLI's text report…","report":{…the CLI's --json report…}}
//   or {"ok":false,"code":65,"message":"…"}
// convert additionally names the converted file in the in-memory file system ("output"),
// whose bytes JavaScript takes before removing it.
#include <emscripten/bind.h>
#include <emscripten/val.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "loaders/profile.h"
#include "report/pipeline.h"
#include "report/report.h"
#include "safetensors/reader.h"

namespace {

using nlohmann::ordered_json;

// The file JavaScript is filling; taken by the next verify or convert.
std::vector<uint8_t> g_staged;

std::string dump(const ordered_json& j) { return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace); }

std::string failure(const lv::Error& e) {
  return dump({{"ok", false}, {"code", static_cast<int>(e.code)}, {"message", e.message}});
}

// Allocates the buffer for a file of `size` bytes and returns its address in the module's
// memory (0 for a size no buffer can have: wasm32's PTRDIFF_MAX; the caller states the limit).
uintptr_t stage_input(double size) {
  std::vector<uint8_t>().swap(g_staged);
  if (!(size >= 0) || size > static_cast<double>(g_staged.max_size())) return 0;
  g_staged.resize(static_cast<size_t>(size));
  return g_staged.empty() ? 1 : reinterpret_cast<uintptr_t>(g_staged.data());
}

double staged_size() { return static_cast<double>(g_staged.size()); }

std::shared_ptr<const lv::st::SafetensorsFile> take_input(const std::string& name, std::string& error) {
  auto f = lv::st::SafetensorsFile::from_bytes(std::exchange(g_staged, {}), name);
  if (!f.ok()) {
    error = failure(f.error());
    return nullptr;
  }
  return std::make_shared<const lv::st::SafetensorsFile>(std::move(f).value());
}

// One thread: the pipelines then never start a std::thread (the module is built without
// pthreads, so the page needs no cross-origin isolation). `progress(phase, fraction)` is a
// JavaScript function or undefined.
lv::report::PipelineOptions options(emscripten::val progress) {
  lv::report::PipelineOptions o;
  o.threads = 1;
  if (progress.typeOf().as<std::string>() == "function")
    o.progress = [progress](std::string_view phase, double fraction) { progress(std::string(phase), fraction); };
  return o;
}

std::string envelope(const lv::report::Report& r, const std::string& output = "") {
  // The report is spliced in as the CLI renders it, byte for byte.
  std::string s = "{\"ok\":true,\"pass\":" + std::string(r.pass ? "true" : "false");
  if (!output.empty()) s += ",\"output\":" + dump(ordered_json(output));
  s += ",\"text\":" + dump(ordered_json(lv::report::render_text(r)));
  return s + ",\"report\":" + lv::report::render_json(r) + "}";
}

// `lora-verify FILE --json`: the staged file, named `name` in the report.
std::string verify(const std::string& name, emscripten::val progress) {
  std::string error;
  auto in = take_input(name, error);
  if (!in) return error;
  auto r = lv::report::run_verify(in, options(progress));
  if (!r.ok()) return failure(r.error());
  return envelope(*r);
}

// `lora-verify convert FILE -o OUT --for APP [--drop-unsupported] --json`: the converted file
// is written to `output` in the in-memory file system only when it verified (the report's pass).
std::string convert(const std::string& name, const std::string& app, const std::string& output,
                    bool drop_unsupported, emscripten::val progress) {
  if (!lv::loaders::find_profile(app))
    return failure({lv::ErrorCode::kUsage, "unknown app '" + app + "' (choose one of " + lv::loaders::profile_names() + ")"});
  std::string error;
  auto in = take_input(name, error);
  if (!in) return error;
  lv::report::PipelineOptions o = options(progress);
  o.for_loader = app;
  o.default_for_loaders = true;
  o.drop_unsupported = drop_unsupported;
  auto r = lv::report::run_convert(in, output, o);
  if (!r.ok()) return failure(r.error());
  return envelope(*r, r->output_written ? output : "");
}

// Every profiled app: [{"name","display","established"}], in report order.
std::string apps() {
  ordered_json list = ordered_json::array();
  for (const auto& p : lv::loaders::profiles())
    list.push_back({{"name", std::string(p.name)}, {"display", std::string(p.display)}, {"established", std::string(p.established)}});
  return dump(list);
}

std::string version() { return LV_VERSION; }

// Emscripten starts with umask 0777, which would give the converted file mode 0 (the
// writer applies 0666 minus the umask) and make it unreadable for the re-read.
const bool kUmaskSet = (::umask(022), true);

}  // namespace

EMSCRIPTEN_BINDINGS(lora_verify) {
  emscripten::function("stage_input", &stage_input);
  emscripten::function("staged_size", &staged_size);
  emscripten::function("verify", &verify);
  emscripten::function("convert", &convert);
  emscripten::function("apps", &apps);
  emscripten::function("version", &version);
}
