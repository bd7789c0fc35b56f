#include "tools/octopage/text.h"

#include <array>
#include <cctype>
#include <string_view>

namespace octopage::cli {
namespace {

// SplitMix64: a small, fast generator with a fixed definition, so text and batches are
// the same on every platform and standard library.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  template <std::size_t N>
  std::string_view pick(const std::array<std::string_view, N>& words) {
    return words[below(N)];
  }

 private:
  std::uint64_t state_;
};

constexpr std::array<std::string_view, 12> kNames = {"Ada", "Ben", "Cleo", "Dov", "Eli", "Fay",
                                                     "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena"};
constexpr std::array<std::string_view, 10> kAnimals = {"cat", "dog", "fox", "owl", "hen",
                                                       "goat", "horse", "mouse", "crow", "bear"};
constexpr std::array<std::string_view, 10> kAdjectives = {"small", "old", "quick", "quiet", "brown",
                                                          "happy", "tired", "clever", "young", "grey"};
constexpr std::array<std::string_view, 9> kPlaces = {"garden", "river", "market", "forest", "barn",
                                                     "hill", "village", "field", "bridge"};
constexpr std::array<std::string_view, 8> kMoves = {"walked", "ran", "sat", "slept",
                                                    "waited", "played", "looked", "sang"};
constexpr std::array<std::string_view, 6> kPrepositions = {"near", "behind", "under", "beside",
                                                           "across", "above"};
constexpr std::array<std::string_view, 7> kDays = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                                   "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 8> kThings = {"apple", "pear", "plum", "egg",
                                                     "book", "coin", "shell", "stone"};
constexpr std::array<std::string_view, 5> kTimes = {"in the morning", "at noon", "in the evening",
                                                    "at night", "after the rain"};

std::string number(std::uint64_t n) { return std::to_string(n); }

// One sentence of one of several kinds; the arithmetic ones are always right.
std::string sentence(Random& r) {
  std::string s;
  switch (r.below(6)) {
    case 0:
      s.append("the ").append(r.pick(kAdjectives)).append(" ").append(r.pick(kAnimals)).append(" ");
      s.append(r.pick(kMoves)).append(" ").append(r.pick(kPrepositions)).append(" the ");
      s.append(r.pick(kPlaces)).append(".");
      break;
    case 1: {
      const std::string_view name = r.pick(kNames), thing = r.pick(kThings);
      const std::uint64_t a = 2 + r.below(9), b = 2 + r.below(9);
      s.append(name).append(" has ").append(number(a)).append(" ").append(thing).append("s and finds ");
      s.append(number(b)).append(" more, so ").append(name).append(" has ").append(number(a + b));
      s.append(" ").append(thing).append("s.");
      break;
    }
    case 2: {
      const std::uint64_t a = r.below(50), b = r.below(50);
      s.append(number(a)).append(" + ").append(number(b)).append(" = ").append(number(a + b)).append(".");
      break;
    }
    case 3: {
      const std::uint64_t a = 2 + r.below(11), b = 2 + r.below(11);
      s.append(number(a)).append(" times ").append(number(b)).append(" is ").append(number(a * b)).append(".");
      break;
    }
    case 4:
      s.append("on ").append(r.pick(kDays)).append(", ").append(r.pick(kNames)).append(" saw a ");
      s.append(r.pick(kAdjectives)).append(" ").append(r.pick(kAnimals)).append(" by the ");
      s.append(r.pick(kPlaces)).append(" ").append(r.pick(kTimes)).append(".");
      break;
    default:
      s.append(r.pick(kNames)).append(" and ").append(r.pick(kNames)).append(" ").append(r.pick(kMoves));
      s.append(" to the ").append(r.pick(kPlaces)).append(" ").append(r.pick(kTimes)).append(".");
      break;
  }
  s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

std::string generate_text(std::uint64_t seed, std::size_t bytes) {
  Random r(seed);
  std::string text;
  text.reserve(bytes + 256);
  while (text.size() < bytes) {
    const std::uint64_t sentences = 2 + r.below(4);  // a paragraph
    for (std::uint64_t i = 0; i < sentences; ++i) text.append(i ? " " : "").append(sentence(r));
    text.append("\n");
  }
  text.resize(bytes);
  return text;
}

std::vector<std::int64_t> window_starts(std::uint64_t seed, std::int64_t step, std::int64_t batch,
                                        std::int64_t text_bytes, std::int64_t window) {
  Random r(seed * 0x2545F4914F6CDD1Dull + static_cast<std::uint64_t>(step));
  std::vector<std::int64_t> starts(static_cast<std::size_t>(batch));
  const auto positions = static_cast<std::uint64_t>(text_bytes - window + 1);
  for (std::int64_t& start : starts) start = static_cast<std::int64_t>(r.below(positions));
  return starts;
}

}  // namespace octopage::cli
