// Replay driver for builds without libFuzzer: runs the harness on every file named on the
// command line, and on every file inside named directories. The corpus is a regression suite.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  // LV_REPLAY_SLOWEST=N lists the N inputs that took longest (where a harness spends its time).
  const char* slowest_env = std::getenv("LV_REPLAY_SLOWEST");
  const size_t slowest = slowest_env ? std::strtoul(slowest_env, nullptr, 10) : 0;
  std::vector<std::pair<double, std::filesystem::path>> times;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto start = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    times.emplace_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), f);
  }
  std::printf("replayed %zu inputs\n", files.size());
  std::sort(times.rbegin(), times.rend());
  for (size_t i = 0; i < std::min(slowest, times.size()); ++i)
    std::printf("%8.2f ms  %s\n", times[i].first * 1e3, times[i].second.c_str());
  return files.empty() ? 1 : 0;
}
