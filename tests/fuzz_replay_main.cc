// Runs a libFuzzer target's LLVMFuzzerTestOneInput over files, without libFuzzer: the committed
// seed corpus of each fuzz target becomes a regression test in the normal and sanitizer builds
// (signet_fuzz in cmake/SignetHelpers.cmake). Usage: <name>_fuzz_replay PATH...; a PATH that is a
// folder contributes every regular file in it, in name order. A target signals a failed property
// by aborting, so this driver fails with it; it also fails when given no input at all, so that a
// misplaced corpus cannot pass as an empty one.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool ReadFile(const std::filesystem::path& path, std::vector<uint8_t>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(arg, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      if (ec) {
        std::fprintf(stderr, "cannot list %s: %s\n", argv[i], ec.message().c_str());
        return 2;
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (std::filesystem::is_regular_file(arg, ec)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "%s is neither a file nor a folder\n", argv[i]);
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s PATH... (no input found)\n", argc > 0 ? argv[0] : "replay");
    return 2;
  }
  std::vector<uint8_t> data;
  for (const auto& path : inputs) {
    if (!ReadFile(path, data)) {
      std::fprintf(stderr, "cannot read %s\n", path.c_str());
      return 2;
    }
    std::fprintf(stderr, "%s (%zu bytes)\n", path.c_str(), data.size());
    // A copy of exactly the input's size, so that ASan catches a read past its end; never a null
    // pointer, even for an empty input, as libFuzzer never passes one.
    auto exact = std::make_unique<uint8_t[]>(std::max<size_t>(data.size(), 1));
    std::copy(data.begin(), data.end(), exact.get());
    LLVMFuzzerTestOneInput(exact.get(), data.size());
  }
  std::printf("%zu inputs replayed\n", inputs.size());
  return 0;
}
