// Test-only access to the shared test vectors in ../shared/testdata/merkle (next to the source
// tree), found through SIGNET_SOURCE_DIR, which signet_test sets for every test. Missing vectors
// are an error, never a reason to skip: a test that silently checks nothing proves nothing.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace signet::audit::testing {

// $SIGNET_SOURCE_DIR/../shared/testdata/merkle, if that folder exists; FailedPrecondition naming
// what is missing otherwise.
Result<std::string> MerkleTestdataDir();

// The whole file as text (at most 16 MiB).
Result<std::string> ReadTextFile(const std::string& path);

// Every regular file ending in `extension` below `dir` (recursively), sorted by path. Empty if the
// folder does not exist.
std::vector<std::string> ListFiles(const std::string& dir, const std::string& extension);

}  // namespace signet::audit::testing
