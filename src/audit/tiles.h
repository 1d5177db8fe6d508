// audit/tiles: the C2SP tlog-tiles layout of the log (c2sp.org/tlog-tiles): tile coordinates and
// their URL paths, which tiles a tree of a given size consists of, entry bundles, and node hashes
// read back from hash tiles. Pure functions; the integrator writes tiles, the server serves them
// and the verifier and the proof endpoints read them.
//
// A hash tile at level L, index N and width W (1..256) holds the W consecutive hashes of tree
// level 8*L starting at node 256*N, concatenated (32 bytes each). A tile of width 256 is full and
// never changes; a narrower ("partial") one is the prefix of the full tile to come. An entry bundle
// N holds entries 256*N .. 256*N+W-1, each as a big-endian uint16 length followed by its bytes.
//
// Paths (relative to the log's prefix, e.g. "/log/"):
//   tile/<L>/<N>[.p/<W>]          hash tile; L decimal, W in 1..255 only with .p
//   tile/entries/<N>[.p/<W>]      entry bundle
// where <N> is written in groups of three decimal digits, every group but the last prefixed with
// "x": 0 -> "000", 1234067 -> "x001/x234/067". The spec allows L up to 63, but a tree of at most
// 2^64 - 1 entries has tiles on levels 0..7 only (kMaxTileLevel), so signet neither produces nor
// accepts higher levels.
//
// Threads: pure functions, safe to call concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/merkle.h"
#include "common/bytes.h"
#include "common/result.h"

namespace signet::audit {

inline constexpr int kTileHeight = 8;    // tree levels per tile
inline constexpr int kTileWidth = 256;   // hashes (or entries) in a full tile
inline constexpr int kMaxTileLevel = 7;  // 8 * 8 = 64 tree levels

struct TileRef {
  bool entries = false;    // an entry bundle (level is then 0)
  int level = 0;           // tile level (tree level 8 * level)
  uint64_t index = 0;      // N
  int width = kTileWidth;  // 1 .. 256
  friend bool operator==(const TileRef&, const TileRef&) = default;
};

// "tile/0/x001/234.p/7", "tile/entries/000". Width 256 has no ".p/" part.
std::string TilePath(const TileRef& tile);
// Parses a path of the form above (without leading "/" or prefix). Strict: InvalidArgument for
// anything else (leading zeros beyond the 3-digit groups, a missing "x", width 0 or 256 after .p,
// level above kMaxTileLevel, a tile that no tree of at most 2^64 - 1 entries has — e.g. one whose
// last hash would cover entries at or past 2^64 - 1 —, trailing bytes, more than 64 bytes).
// ParseTilePath(TilePath(t)) == t for every tile such a tree has, and TilePath(ParseTilePath(p))
// == p for every accepted p.
Result<TileRef> ParseTilePath(std::string_view path);

// The tiles (hash tiles of every level, and entry bundles when `with_entries`) that make up a tree
// of `size` entries: the full ones and the partial one at the right edge of each level, if any.
// Hash tiles in order of level, then index; entry bundles last, by index. About size / 255
// elements: for small trees and tests; an integrator uses NewTiles.
std::vector<TileRef> TilesForSize(TreeSize size, bool with_entries = false);
// The tiles that exist at `new_size` but not (with this width) at `old_size`: what an integrator
// must write when the tree grows from old_size to new_size, in the order of TilesForSize. About
// (new_size - old_size) / 255 + 8 elements. Empty when old_size >= new_size.
std::vector<TileRef> NewTiles(TreeSize old_size, TreeSize new_size, bool with_entries = false);

// Reads a hash tile; returns its 32 * width bytes or an error (NotFound, ...) passed on unchanged.
using TileFetchFn = std::function<Result<Bytes>(const TileRef& tile)>;

// A NodeHashFn for the tree of `size` entries backed by hash tiles: a node on a tile level is read
// from its tile; any other perfect node inside the tree is computed from the tile one level below
// (hashing at most 127 pairs of children). DataLoss if a fetched tile has the wrong length;
// InvalidArgument for a node outside the tree; errors of `fetch` are returned unchanged. Tiles are
// fetched with the width they have at `size`, one fetch per call, on the calling thread (no cache,
// so copies of the function may be used from several threads if `fetch` allows it).
NodeHashFn TileNodeHashFn(TreeSize size, TileFetchFn fetch);

// Entry bundles. Encode: InvalidArgument for no entries, more than 256 or an entry over 65535
// bytes. Decode: InvalidArgument (naming the offset) for an empty bundle, a truncated length or
// entry, or bytes after a 256th entry; `expected` (when not 0) must equal the number of entries
// (InvalidArgument otherwise, and for `expected` outside 0..256). Decode then Encode gives the
// input back.
Result<Bytes> EncodeEntryBundle(std::span<const std::string> entries);
Result<std::vector<std::string>> DecodeEntryBundle(ByteView bundle, int expected = 0);

}  // namespace signet::audit
