#include "audit/tiles.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace signet::audit {
namespace {

constexpr uint64_t kMaxUint64 = std::numeric_limits<uint64_t>::max();
// The longest path ParseTilePath can accept ("tile/entries/" + seven index groups + ".p/255" is
// 50 bytes); anything longer is refused before it is scanned.
constexpr size_t kMaxTilePathSize = 64;
constexpr size_t kMaxBundleEntrySize = 65535;

std::string Str(uint64_t v) { return std::to_string(v); }

// A prefix of untrusted input fit for an error message.
std::string Quote(std::string_view text) {
  constexpr size_t kShown = 80;
  std::string out = "\"";
  for (char c : text.substr(0, kShown)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte >= 0x20 && byte < 0x7f) ? c : '?';
  }
  out += text.size() > kShown ? "...\"" : "\"";
  return out;
}

// The number of nodes tree level 8 * `level` has in a tree of `size` entries.
uint64_t NodesAtTileLevel(uint64_t size, int level) { return size >> (kTileHeight * level); }

// Whether tile `tile` exists in some tree of at most 2^64 - 1 entries: its last hash (or entry)
// must lie inside such a tree. This is what keeps every index arithmetic below overflow-free.
bool TileFits(const TileRef& tile) {
  const auto width = static_cast<uint64_t>(tile.width);
  const uint64_t limit = NodesAtTileLevel(kMaxUint64, tile.entries ? 0 : tile.level);
  if (limit < width) return false;
  return tile.index <= (limit - width) / kTileWidth;
}

// "x001/x234/067" for 1234067: three-digit groups, most significant first, all but the last
// prefixed with "x" (c2sp.org/tlog-tiles, "Tile index").
std::string EncodeIndex(uint64_t index) {
  std::vector<int> groups;
  do {
    groups.push_back(static_cast<int>(index % 1000));
    index /= 1000;
  } while (index != 0);
  std::string out;
  for (size_t i = groups.size(); i-- > 0;) {
    if (i != groups.size() - 1) out += '/';
    if (i != 0) out += 'x';
    const int g = groups[i];
    out += static_cast<char>('0' + g / 100);
    out += static_cast<char>('0' + g / 10 % 10);
    out += static_cast<char>('0' + g % 10);
  }
  return out;
}

// A decimal without sign or leading zeros ("0" itself is fine), at most `max`.
std::optional<uint64_t> ParseSmallDecimal(std::string_view text, uint64_t max) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

}  // namespace

std::string TilePath(const TileRef& tile) {
  std::string path = "tile/";
  path += tile.entries ? std::string("entries") : std::to_string(tile.level);
  path += '/';
  path += EncodeIndex(tile.index);
  if (tile.width != kTileWidth) path += ".p/" + std::to_string(tile.width);
  return path;
}

Result<TileRef> ParseTilePath(std::string_view path) {
  auto refuse = [path](std::string_view why) -> Error {
    return InvalidArgument("tile path " + Quote(path) + " is not valid: " + std::string(why) +
                           " (expected tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>] as in "
                           "c2sp.org/tlog-tiles)");
  };
  if (path.size() > kMaxTilePathSize) return refuse("too long");
  std::string_view rest = path;
  if (!rest.starts_with("tile/")) return refuse("it must start with \"tile/\"");
  rest.remove_prefix(5);

  TileRef tile;
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return refuse("no tile index");
  const std::string_view kind = rest.substr(0, slash);
  rest.remove_prefix(slash + 1);
  if (kind == "entries") {
    tile.entries = true;
  } else {
    std::optional<uint64_t> level = ParseSmallDecimal(kind, kMaxTileLevel);
    if (!level) {
      return refuse("the level must be a decimal 0.." + std::to_string(kMaxTileLevel) +
                    " without leading zeros, or \"entries\"");
    }
    tile.level = static_cast<int>(*level);
  }

  // Index groups: ("x" DDD "/")* DDD.
  uint64_t index = 0;
  while (true) {
    const bool more = !rest.empty() && rest[0] == 'x';
    if (more) rest.remove_prefix(1);
    if (rest.size() < 3 ||
        !std::all_of(rest.begin(), rest.begin() + 3, [](char c) { return c >= '0' && c <= '9'; })) {
      return refuse("each index group must be three decimal digits");
    }
    const int digits = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
    const auto group = static_cast<uint64_t>(digits);
    if (index > (kMaxUint64 - group) / 1000) return refuse("the index does not fit 64 bits");
    index = index * 1000 + group;
    rest.remove_prefix(3);
    if (!more) break;
    if (rest.empty() || rest[0] != '/') return refuse("an \"x\" group must be followed by \"/\"");
    rest.remove_prefix(1);
  }
  tile.index = index;

  if (!rest.empty()) {
    if (!rest.starts_with(".p/")) return refuse("unexpected bytes after the index");
    rest.remove_prefix(3);
    std::optional<uint64_t> width = ParseSmallDecimal(rest, kTileWidth - 1);
    if (!width || *width == 0) {
      return refuse("a partial width must be a decimal 1..255 without leading zeros");
    }
    tile.width = static_cast<int>(*width);
  }
  // Decoding and re-encoding must give the input back; this refuses "x000/..." and the like.
  if (TilePath(tile) != path) return refuse("the index is not written canonically");
  if (!TileFits(tile)) return refuse("no tree of at most 2^64 - 1 entries has this tile");
  return tile;
}

std::vector<TileRef> TilesForSize(TreeSize size, bool with_entries) {
  return NewTiles(TreeSize(0), size, with_entries);
}

std::vector<TileRef> NewTiles(TreeSize old_size, TreeSize new_size, bool with_entries) {
  std::vector<TileRef> tiles;
  if (old_size >= new_size) return tiles;
  // Per tile level, the tiles whose width changed: the one that was partial (or absent) at
  // old_size up to the one at the right edge of new_size. Entry bundles follow level 0.
  auto add_level = [&](bool entries, int level) {
    const uint64_t old_count = NodesAtTileLevel(old_size.value(), level);
    const uint64_t new_count = NodesAtTileLevel(new_size.value(), level);
    if (old_count == new_count) return;
    const uint64_t full_end = new_count / kTileWidth;
    for (uint64_t index = old_count / kTileWidth; index < full_end; ++index) {
      tiles.push_back(TileRef{entries, level, index, kTileWidth});
    }
    if (new_count % kTileWidth != 0) {
      tiles.push_back(TileRef{entries, level, full_end, static_cast<int>(new_count % kTileWidth)});
    }
  };
  for (int level = 0; level <= kMaxTileLevel; ++level) add_level(false, level);
  if (with_entries) add_level(true, 0);
  return tiles;
}

NodeHashFn TileNodeHashFn(TreeSize size, TileFetchFn fetch) {
  return [size, fetch = std::move(fetch)](NodeId node) -> Result<Sha256Digest> {
    const uint64_t s = size.value();
    if (node.level >= 64 || (s >> node.level) <= node.index) {
      return InvalidArgument("node (level " + Str(node.level) + ", index " + Str(node.index) +
                             ") lies outside the tree of " + Str(s) + " entries");
    }
    // The node is the root of the 2^r consecutive nodes of tile level L below it (tlog-tiles,
    // "Merkle tree"): one stored hash when r == 0, else 2^r - 1 hashes to recompute.
    const int level = static_cast<int>(node.level) / kTileHeight;
    const int r = static_cast<int>(node.level) % kTileHeight;
    const uint64_t first = node.index << r;  // no overflow: the node lies inside the tree
    const uint64_t count = NodesAtTileLevel(s, level);
    TileRef tile{false, level, first / kTileWidth, kTileWidth};
    if (tile.index == count / kTileWidth) tile.width = static_cast<int>(count % kTileWidth);
    SIGNET_ASSIGN_OR_RETURN(Bytes bytes, fetch(tile));
    const size_t expected = kSha256DigestSize * static_cast<size_t>(tile.width);
    if (bytes.size() != expected) {
      return DataLoss("tile " + TilePath(tile) + " holds " + Str(bytes.size()) +
                      " bytes, expected " + Str(expected) + "; the stored tiles are damaged");
    }
    const size_t position = first % kTileWidth;
    size_t n = size_t{1} << r;
    std::vector<Sha256Digest> hashes(n);
    for (size_t i = 0; i < n; ++i) {
      const auto begin = bytes.begin() + static_cast<std::ptrdiff_t>((position + i) * 32);
      std::copy(begin, begin + 32, hashes[i].begin());
    }
    for (; n > 1; n /= 2) {
      for (size_t i = 0; i < n / 2; ++i) hashes[i] = HashChildren(hashes[2 * i], hashes[2 * i + 1]);
    }
    return hashes[0];
  };
}

Result<Bytes> EncodeEntryBundle(std::span<const std::string> entries) {
  if (entries.empty() || entries.size() > static_cast<size_t>(kTileWidth)) {
    return InvalidArgument("an entry bundle holds 1..256 entries, got " + Str(entries.size()));
  }
  size_t total = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].size() > kMaxBundleEntrySize) {
      return InvalidArgument("entry " + Str(i) + " of a bundle is " + Str(entries[i].size()) +
                             " bytes; entries are at most 65535 bytes");
    }
    total += 2 + entries[i].size();
  }
  Bytes bundle;
  bundle.reserve(total);
  for (const std::string& entry : entries) {
    bundle.push_back(static_cast<uint8_t>(entry.size() >> 8));
    bundle.push_back(static_cast<uint8_t>(entry.size() & 0xff));
    bundle.insert(bundle.end(), entry.begin(), entry.end());
  }
  return bundle;
}

Result<std::vector<std::string>> DecodeEntryBundle(ByteView bundle, int expected) {
  if (expected < 0 || expected > kTileWidth) {
    return InvalidArgument("an entry bundle holds 1..256 entries, not " + std::to_string(expected));
  }
  if (bundle.empty())
    return InvalidArgument("an entry bundle holds at least one entry; it is empty");
  std::vector<std::string> entries;
  size_t offset = 0;
  while (offset < bundle.size()) {
    if (entries.size() == static_cast<size_t>(kTileWidth)) {
      return InvalidArgument("entry bundle has bytes after its 256th entry, at offset " +
                             Str(offset));
    }
    if (bundle.size() - offset < 2) {
      return InvalidArgument("entry bundle ends inside the length of an entry, at offset " +
                             Str(offset));
    }
    const size_t length = (size_t{bundle[offset]} << 8) | bundle[offset + 1];
    if (bundle.size() - offset - 2 < length) {
      return InvalidArgument("entry bundle ends inside the entry at offset " + Str(offset) + " (" +
                             Str(length) + " bytes announced, " + Str(bundle.size() - offset - 2) +
                             " left)");
    }
    const auto* begin = bundle.data() + offset + 2;
    entries.emplace_back(reinterpret_cast<const char*>(begin), length);
    offset += 2 + length;
  }
  if (expected != 0 && entries.size() != static_cast<size_t>(expected)) {
    return InvalidArgument("entry bundle holds " + Str(entries.size()) + " entries, expected " +
                           std::to_string(expected));
  }
  return entries;
}

}  // namespace signet::audit
