// Small helpers the plain-main benchmarks share: what the machine is, and the median they report.
#pragma once

#include <string>
#include <vector>

namespace signet::bench {

// The file system type of `path` by its statfs magic number ("ext2/3/4", "tmpfs", ..., or
// "magic 0x..."), since a flush on tmpfs costs nothing and makes a durability benchmark meaningless.
std::string FileSystemType(const std::string& path);

// The folder of the running executable (the build tree, on disk), or "." if it cannot be read.
std::string ExecutableFolder();

// The median of `v` (the mean of the two middle values for an even count); 0 for none.
double Median(std::vector<double> v);

}  // namespace signet::bench
