// The `lora_verify` Python module (pybind11): compare, verify and inspect from Python, with
// the CLI's reports as dicts and the CLI's errors as lora_verify.Error (message, .code).
//
// Inputs are paths (str or os.PathLike), read through the same memory map as the CLI, or
// `bytes` holding a serialized safetensors file. Bytes are copied once into the reader's
// owned buffer (SafetensorsFile::from_bytes takes a std::vector): Python may free or reuse
// the object while the check runs without the GIL, so the module does not borrow it.
#include <pybind11/pybind11.h>

#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "lora/loader.h"
#include "report/loader_rows.h"
#include "report/inspect.h"
#include "report/pipeline.h"
#include "report/report.h"
#include "safetensors/reader.h"

namespace py = pybind11;

namespace {

py::object& error_type() {
  static py::object* type = nullptr;  // lives as long as the interpreter (module attribute)
  if (!type) type = new py::object(py::reinterpret_steal<py::object>(PyErr_NewException("lora_verify.Error", PyExc_Exception, nullptr)));
  return *type;
}

[[noreturn]] void raise(const lv::Error& e) {
  py::object err = error_type()(e.message);
  err.attr("code") = static_cast<int>(e.code);
  err.attr("message") = e.message;
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

py::object to_python(const std::string& json_text) { return py::module_::import("json").attr("loads")(py::str(json_text)); }

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
    text = lv::report::inspect(*file, model).json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
  return to_python(text);
}

}  // namespace

PYBIND11_MODULE(lora_verify, m) {
  m.doc() = "lora-verify: prove FLUX LoRA conversions correct (compare, verify, inspect).";
  m.attr("__version__") = LV_VERSION;
  m.attr("Error") = error_type();
  m.def("compare", &compare, py::arg("source"), py::arg("converted"),
        "Checks a conversion made by any tool: the report of `lora-verify compare` as a dict. "
        "Arguments are paths or bytes of a safetensors file. report['verdict'] is 'pass' or 'fail'.");
  m.def("verify", &verify, py::arg("path"),
        "Converts in memory to the other layout, re-reads and verifies: the report of `lora-verify IN` as a dict.");
  m.def("inspect", &inspect, py::arg("path"), "Container, metadata, dtypes, dialect and loaders: `lora-verify inspect --json`.");
}
