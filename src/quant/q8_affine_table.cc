#include "src/quant/q8_affine_table.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "octopage/error.h"
#include "src/quant/float_convert.h"
#include "src/quant/q8_reference.h"

namespace octopage::quant {
namespace {

constexpr std::uint32_t kNever = 0xFFFFFFFFu;
constexpr std::uint32_t kTwo = 0x40000000u;  // the bits of 2.0: the first magnitude always flagged
constexpr float kInfinity = std::numeric_limits<float>::infinity();

struct Threshold {
  int code;             // the code just below it; code + 1 from bits on
  std::uint32_t bits;
};

struct Piece {
  float slope = 0.0f;
  float offset = 0.0f;
  double residual = 0.0;
};

class SlotFitter {
 public:
  SlotFitter(const DynamicCode& code, const Q8LookupTables& tables) : code_(code) {
    for (int c = 0; c + 1 < kCodeSize; ++c) {
      if (tables.threshold[c] != kNever) thresholds_.push_back({c, tables.threshold[c]});
    }
  }

  int code_at(std::uint32_t bits) const { return encode_reference(code_, bits_float(bits)); }

  // The thresholds strictly inside (lo, hi).
  std::vector<Threshold> inside(std::uint32_t lo, std::uint32_t hi) const {
    std::vector<Threshold> found;
    for (const Threshold& t : thresholds_) {
      if (t.bits > lo && t.bits < hi) found.push_back(t);
    }
    return found;
  }

  // The best verified fit of the piece [lo, hi) with these inner thresholds; `ceiling`
  // caps r when finite. None when no candidate slope passes the note's checks.
  std::optional<Piece> fit(std::uint32_t lo, std::uint32_t hi, const std::vector<Threshold>& inner,
                           float ceiling) const {
    std::optional<Piece> best;
    for (double slope : candidate_slopes(inner)) {
      std::vector<double> offsets;
      for (const Threshold& t : inner) offsets.push_back(t.code + 1 - slope * bits_float(t.bits));
      std::sort(offsets.begin(), offsets.end());
      const double offset = offsets.empty() ? code_at(lo) + 0.5 : offsets[offsets.size() / 2];
      Piece piece{static_cast<float>(slope), static_cast<float>(offset), 0.0};
      const auto r = [&](std::uint32_t bits) {
        return std::min(std::fma(bits_float(bits), piece.slope, piece.offset), ceiling);
      };
      // floor(r) is the code at both ends, or r reaches the code's integer just after
      // the start or the next integer just before the end, within kEpsilon / 2 (flagged).
      const auto near = [](float r_end, int integer) {
        return std::fabs(static_cast<double>(r_end) - integer) < Q8AffineTable::kEpsilon / 2;
      };
      const int first = code_at(lo), last = code_at(hi - 1);
      const bool start_holds = std::floor(r(lo)) == first || near(r(lo), first);
      const bool end_holds = std::floor(r(hi - 1)) == last || near(r(hi - 1), last + 1);
      if (!start_holds || !end_holds) continue;
      for (const Threshold& t : inner) {
        piece.residual = std::max({piece.residual, std::fabs(static_cast<double>(r(t.bits)) - (t.code + 1)),
                                   std::fabs(static_cast<double>(r(t.bits - 1)) - (t.code + 1))});
      }
      if (piece.residual >= Q8AffineTable::kEpsilon / 2) continue;
      if (!best || piece.residual < best->residual) best = piece;
    }
    return best;
  }

 private:
  // One over each spacing between consecutive thresholds around the inner ones (the
  // decade's even spacing is among them); 0 when there are none.
  std::vector<double> candidate_slopes(const std::vector<Threshold>& inner) const {
    if (inner.empty()) return {0.0};
    std::vector<double> slopes;
    for (std::size_t i = 1; i < thresholds_.size(); ++i) {
      const Threshold& a = thresholds_[i - 1];
      const Threshold& b = thresholds_[i];
      if (b.code < inner.front().code - 2 || a.code > inner.back().code + 2) continue;
      slopes.push_back(1.0 / (static_cast<double>(bits_float(b.bits)) - bits_float(a.bits)));
    }
    return slopes;
  }

  const DynamicCode& code_;
  std::vector<Threshold> thresholds_;
};

}  // namespace

float q8_affine_r(const Q8AffineTable& t, std::uint32_t magnitude_bits) {
  const int s = q8_affine_slot(t, magnitude_bits);
  const float a = bits_float(magnitude_bits);
  return a < t.cross[s] ? std::min(std::fma(a, t.slope_below[s], t.offset_below[s]), t.ceiling[s])
                        : std::fma(a, t.slope_above[s], t.offset_above[s]);
}

Q8AffineTable make_q8_affine_table(const DynamicCode& code, const Q8LookupTables& tables) {
  Q8AffineTable t;
  t.first_exponent = tables.first_exponent;
  const SlotFitter fitter(code, tables);
  for (int s = 0; s < Q8AffineTable::kSlots; ++s) {
    // Unfitted slots flag every value: r = min(0 * a + 0, 0) = 0 is an integer.
    t.cross[s] = kInfinity;
    t.slope_below[s] = t.offset_below[s] = t.ceiling[s] = 0.0f;
    t.slope_above[s] = t.offset_above[s] = 0.0f;
    const std::uint32_t lo = s == 0 ? 0 : (t.first_exponent + s - 1) << 23;
    const std::uint32_t hi = (t.first_exponent + s) << 23;
    if (hi > kTwo) continue;
    const std::vector<Threshold> inner = fitter.inside(lo, hi);
    double best = std::numeric_limits<double>::infinity();
    // split == inner.size(): one piece; else two, the piece above from inner[split].
    for (std::size_t split = 0; split <= inner.size(); ++split) {
      const bool one_piece = split == inner.size();
      const std::uint32_t cross = one_piece ? hi : inner[split].bits;
      const float ceiling = static_cast<float>(fitter.code_at(cross - 1)) + 0.5f;
      const std::vector<Threshold> below(inner.begin(), inner.begin() + static_cast<std::ptrdiff_t>(split));
      const auto low_piece = fitter.fit(lo, cross, below, ceiling);
      std::optional<Piece> high_piece = Piece{};
      if (!one_piece) {
        const std::vector<Threshold> above(inner.begin() + static_cast<std::ptrdiff_t>(split) + 1, inner.end());
        high_piece = fitter.fit(cross, hi, above, kInfinity);
      }
      if (!low_piece || !high_piece) continue;
      const double residual = std::max(low_piece->residual, high_piece->residual);
      if (residual >= best) continue;
      best = residual;
      t.cross[s] = one_piece ? kInfinity : bits_float(cross);
      t.slope_below[s] = low_piece->slope;
      t.offset_below[s] = low_piece->offset;
      t.ceiling[s] = ceiling;
      t.slope_above[s] = high_piece->slope;
      t.offset_above[s] = high_piece->offset;
    }
    if (std::isfinite(best)) t.max_residual = std::max(t.max_residual, best);
  }
  return t;
}

const Q8AffineTable& signed_affine_table() {
  static const Q8AffineTable table = make_q8_affine_table(signed_code(), signed_lookup_tables());
  return table;
}

const Q8AffineTable& unsigned_affine_table() {
  static const Q8AffineTable table = make_q8_affine_table(unsigned_code(), unsigned_lookup_tables());
  return table;
}

}  // namespace octopage::quant
