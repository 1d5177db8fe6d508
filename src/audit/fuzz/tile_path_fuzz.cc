// Fuzzes the parsers of untrusted input in audit/tiles.h: tile paths (what /log/tile/... requests
// carry) and entry bundles (what a verifier downloads). Properties: nothing crashes or trips a
// sanitizer; a path that parses is canonical (TilePath gives the input back) and names a tile that
// a real tree has (it appears when the tree grows to the size its last hash covers); a bundle that
// decodes encodes back to exactly the input and decodes again with its entry count given.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "audit/tiles.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace signet::audit;  // NOLINT(google-build-using-namespace): fuzz driver only.
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto tile = ParseTilePath(text); tile.ok()) {
    if (TilePath(*tile) != text) std::abort();
    // The tree size at which the tile's last hash (or entry) appears: (256 N + W) * 256^L.
    const int level = tile->entries ? 0 : tile->level;
    const uint64_t count = tile->index * kTileWidth + static_cast<uint64_t>(tile->width);
    const uint64_t end = count << (kTileHeight * level);
    if ((end >> (kTileHeight * level)) != count) std::abort();  // ParseTilePath let it overflow.
    const std::vector<TileRef> grown = NewTiles(TreeSize(end - 1), TreeSize(end), true);
    if (std::find(grown.begin(), grown.end(), *tile) == grown.end()) std::abort();
  }

  if (auto entries = DecodeEntryBundle(signet::ByteView(data, size)); entries.ok()) {
    auto encoded = EncodeEntryBundle(*entries);
    if (!encoded.ok() || *encoded != signet::Bytes(data, data + size)) std::abort();
    if (!DecodeEntryBundle(*encoded, static_cast<int>(entries->size())).ok()) std::abort();
  }
  return 0;
}
