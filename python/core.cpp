// lora_verify._core (pybind11): the C++ side of the `lora_verify` package. compare, verify and
// inspect give the CLI's reports as dicts; check gives one app's row of the CLI's loaders
// section; convert runs the CLI's `convert --for` pipeline. Errors are lora_verify.Error
// with the CLI's message and exit code (.code). python/lora_verify/__init__.py wraps these
// in typed result objects.
//
// Inputs are paths (str or os.PathLike), read through the same memory map as the CLI, or
// `bytes` holding a serialized safetensors file. Bytes are copied once into the reader's
// owned buffer (SafetensorsFile::from_bytes takes a std::vector): Python may free or reuse
// the object while the check runs without the GIL, so the module does not borrow it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "flux/family.h"
#include "loaders/profile.h"
#include "loaders/verdict.h"
#include "lora/loader.h"
#include "report/inspect.h"
#include "report/loader_rows.h"
#include "report/pipeline.h"
#include "report/report.h"
#include "safetensors/reader.h"
#include "verify/kernels.h"

namespace py = pybind11;

namespace {

constexpr const char* kErrorDoc =
    "A lora-verify error: .message is the CLI's message (naming the file, tensor and numbers) and .code "
    "the exit code the CLI gives for it (1 checks failed, 64 usage, 65 bad input, 66 cannot open, "
    "70 internal, 73 cannot create, 74 I/O).";

py::object& error_type() {
  static py::object* type = nullptr;  // lives as long as the interpreter (module attribute)
  if (!type)
    type = new py::object(py::reinterpret_steal<py::object>(
        PyErr_NewExceptionWithDoc("lora_verify.Error", kErrorDoc, PyExc_Exception, nullptr)));
  return *type;
}

[[noreturn]] void raise(const lv::Error& e, py::object report = py::none()) {
  py::object err = error_type()(e.message);
  err.attr("code") = static_cast<int>(e.code);
  err.attr("message") = e.message;
  err.attr("report") = report;
  PyErr_SetObject(error_type().ptr(), err.ptr());
  throw py::error_already_set();
}

template <typename T>
T take(lv::Result<T> r) {
  if (!r.ok()) raise(r.error());
  return std::move(r).value();
}

// A path (str, os.PathLike) or bytes; `what` names a bytes argument in error messages.
std::shared_ptr<const lv::st::SafetensorsFile> open_arg(const py::handle& obj, const std::string& what) {
  if (py::isinstance<py::bytes>(obj)) {
    char* data = nullptr;
    Py_ssize_t size = 0;
    if (PyBytes_AsStringAndSize(obj.ptr(), &data, &size) != 0) throw py::error_already_set();
    std::vector<uint8_t> bytes(reinterpret_cast<const uint8_t*>(data), reinterpret_cast<const uint8_t*>(data) + size);
    py::gil_scoped_release nogil;
    auto f = lv::st::SafetensorsFile::from_bytes(std::move(bytes), "(" + what + " bytes)");
    if (!f.ok()) {
      py::gil_scoped_acquire gil;
      raise(f.error());
    }
    return std::make_shared<const lv::st::SafetensorsFile>(std::move(f).value());
  }
  if (!py::isinstance<py::str>(obj) && !py::hasattr(obj, "__fspath__"))
    throw py::type_error(what + " must be a path (str or os.PathLike) or bytes holding a safetensors file, not " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::object p = py::module_::import("os").attr("fspath")(obj);
  if (!py::isinstance<py::str>(p)) throw py::type_error(what + " must be a str path or bytes");
  const std::string path = p.cast<std::string>();
  lv::Result<lv::st::SafetensorsFile> f = [&] {
    py::gil_scoped_release nogil;
    return lv::st::SafetensorsFile::open(path);
  }();
  return std::make_shared<const lv::st::SafetensorsFile>(take(std::move(f)));
}

std::string path_arg(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::str>(obj) && !py::hasattr(obj, "__fspath__"))
    throw py::type_error(what + " must be a path (str or os.PathLike)");
  py::object p = py::module_::import("os").attr("fspath")(obj);
  if (!py::isinstance<py::str>(p)) throw py::type_error(what + " must be a str path");
  return p.cast<std::string>();
}

// model="flux1", … as --model takes it; None: detected from the file.
const lv::flux::Family* family_arg(const std::optional<std::string>& model) {
  if (!model) return nullptr;
  const lv::flux::Family* f = lv::flux::find_family(*model);
  if (!f)
    raise({lv::ErrorCode::kUsage,
           "model: unknown model family '" + *model + "' (choose one of " + lv::flux::family_names() + ")"});
  return f;
}

const lv::loaders::Profile& app_arg(const std::string& app, const char* what) {
  const lv::loaders::Profile* p = lv::loaders::find_profile(app);
  if (!p)
    raise({lv::ErrorCode::kUsage, std::string(what) + ": unknown app '" + app + "' (choose one of " +
                                      lv::loaders::profile_names() + ")"});
  return *p;
}

py::object to_python(const std::string& json_text) { return py::module_::import("json").attr("loads")(py::str(json_text)); }

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

py::object report_dict(lv::Result<lv::report::Report> r) {
  const lv::report::Report report = take(std::move(r));
  return to_python(lv::report::render_json(report));
}

py::object compare(const py::object& source, const py::object& converted) {
  auto a = open_arg(source, "source");
  auto b = open_arg(converted, "converted");
  lv::Result<lv::report::Report> r = [&] {
    py::gil_scoped_release nogil;
    return lv::report::run_compare(a, b, lv::report::PipelineOptions{});
  }();
  return report_dict(std::move(r));
}

py::object verify(const py::object& path) {
  auto f = open_arg(path, "path");
  lv::Result<lv::report::Report> r = [&] {
    py::gil_scoped_release nogil;
    return lv::report::run_verify(f, lv::report::PipelineOptions{});
  }();
  return report_dict(std::move(r));
}

// The fields of `lora-verify inspect --json`.
py::object inspect(const py::object& path) {
  auto file = open_arg(path, "path");
  std::string text;
  {
    py::gil_scoped_release nogil;
    auto model = lv::load_lora(file);
    text = dump(lv::report::inspect(*file, model).json);
  }
  return to_python(text);
}

// One app's entry of the report's `loaders` array for the file as it is (the rows `inspect`
// and every report print, from the same profile table), plus `form`/`form_outcome`: the
// output style `convert --for APP` writes and that file's verdict.
py::object check(const py::object& path, const std::string& app, const std::optional<std::string>& model) {
  const lv::loaders::Profile& profile = app_arg(app, "app");
  lv::LoadOptions lo;
  lo.family = family_arg(model);
  auto file = open_arg(path, "path");
  std::optional<lv::Error> error;
  std::string text;
  {
    py::gil_scoped_release nogil;
    auto m = lv::load_lora(file, lo);
    if (!m.ok()) {
      error = m.error();
    } else {
      lv::report::Report r;
      r.loaders = lv::report::loader_rows(*m, nullptr, lv::report::AdviceContext{});
      nlohmann::ordered_json row;
      for (auto& e : lv::report::loaders_json(r))
        if (e["loader"] == profile.name) row = std::move(e);
      const auto form = lv::loaders::choose_form(profile, *m);
      row["form"] = form ? nlohmann::ordered_json(std::string(lv::style_name(form->style))) : nlohmann::ordered_json();
      row["form_outcome"] =
          form ? nlohmann::ordered_json(std::string(lv::loaders::outcome_name(form->verdict.outcome))) : nlohmann::ordered_json();
      text = dump(row);
    }
  }
  if (error) raise(*error);
  return to_python(text);
}

// `lora-verify convert SRC -o DST --for APP [--drop-unsupported] [--allow-unknown] [--model M]`: the report as
// a dict; a failed verification raises Error (code 1) carrying it in .report.
py::object convert(const py::object& source, const py::object& output, const std::string& for_app,
                   bool drop_unsupported, bool allow_unknown, const std::optional<std::string>& model, int threads) {
  app_arg(for_app, "for_app");
  lv::report::PipelineOptions o;
  o.for_loader = for_app;
  o.drop_unsupported = drop_unsupported;
  o.allow_unknown = allow_unknown;
  o.family = family_arg(model);
  if (threads < 1 || threads > 256) raise({lv::ErrorCode::kUsage, "threads: " + std::to_string(threads) + " is not in 1..256"});
  o.threads = threads;
  o.default_for_loaders = true;
  const std::string out = path_arg(output, "output");
  auto in = open_arg(source, "source");
  lv::Result<lv::report::Report> r = [&] {
    py::gil_scoped_release nogil;
    return lv::report::run_convert(in, out, o);
  }();
  const lv::report::Report report = take(std::move(r));
  py::object dict = to_python(lv::report::render_json(report));
  if (!report.pass) raise({lv::ErrorCode::kChecksFailed, out + ": " + report.verdict}, dict);
  return dict;
}

// (name, display, established) of every profiled app, in report order.
std::vector<std::tuple<std::string, std::string, std::string>> apps() {
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  for (const auto& p : lv::loaders::profiles())
    out.emplace_back(std::string(p.name), std::string(p.display), std::string(p.established));
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "The compiled part of lora_verify; use the lora_verify package.";
  m.attr("__version__") = LV_VERSION;
  m.attr("Error") = error_type();
  m.def("compare", &compare, py::arg("source"), py::arg("converted"));
  m.def("verify", &verify, py::arg("path"));
  m.def("inspect", &inspect, py::arg("path"));
  m.def("check", &check, py::arg("path"), py::arg("app"), py::arg("model") = py::none());
  m.def("convert", &convert, py::arg("source"), py::arg("output"), py::arg("for_app"), py::arg("drop_unsupported") = false,
        py::arg("allow_unknown") = false, py::arg("model") = py::none(), py::arg("threads") = 2);
  m.def("apps", &apps);
  m.def("cpu_level", [] { return std::string(lv::verify::kernels::level()); });
}
