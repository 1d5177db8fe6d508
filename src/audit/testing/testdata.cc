#include "audit/testing/testdata.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "common/fs.h"

namespace signet::audit::testing {

Result<std::string> MerkleTestdataDir() {
  // Tests read the environment before starting any thread.
  const char* source = std::getenv("SIGNET_SOURCE_DIR");  // NOLINT(concurrency-mt-unsafe)
  if (source == nullptr || *source == '\0') {
    return FailedPrecondition(
        "SIGNET_SOURCE_DIR is not set: run the test through ctest, or set it "
        "to the signet source folder");
  }
  const std::filesystem::path dir =
      std::filesystem::path(source) / ".." / "shared" / "testdata" / "merkle";
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return FailedPrecondition("test vectors not found at " + dir.string());
  }
  return dir.lexically_normal().string();
}

Result<std::string> ReadTextFile(const std::string& path) {
  SIGNET_ASSIGN_OR_RETURN(Bytes bytes, fs::ReadFile(path));
  return ToString(bytes);
}

std::vector<std::string> ListFiles(const std::string& dir, const std::string& extension) {
  std::vector<std::string> files;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().string().ends_with(extension)) {
      files.push_back(it->path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace signet::audit::testing
