#include "src/engine/offload_pipeline.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "src/engine/thread_pool.h"

namespace octopage::engine {
namespace {

// Records that lie back to back in the file and fit one ring slot: one read, one write.
struct Batch {
  std::size_t first = 0, last = 0;  // [first, last) of the sorted records
  std::uint64_t offset = 0, bytes = 0;
  bool needs_read = false;          // some record has state to read
};

std::int64_t record_of(const WorkItem& r) { return r.begin / r.state->record_elements; }

std::uint64_t file_offset(const WorkItem& r) {
  return r.state->file_offset + static_cast<std::uint64_t>(record_of(r)) * r.state->record_stride;
}

std::vector<Batch> make_batches(const std::vector<WorkItem>& records,
                                const std::vector<std::size_t>& order, std::uint64_t slot_bytes) {
  std::vector<Batch> batches;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const WorkItem& r = records[order[i]];
    const std::uint64_t offset = file_offset(r);
    const std::uint64_t bytes = r.state->record_file_bytes(record_of(r));
    if (batches.empty() || batches.back().offset + batches.back().bytes != offset ||
        batches.back().bytes + bytes > slot_bytes) {
      batches.push_back({i, i, offset, 0, false});
    }
    Batch& b = batches.back();
    b.last = i + 1;
    b.bytes += bytes;
    b.needs_read = b.needs_read || !r.first_step;
  }
  return batches;
}

class Pipeline {
 public:
  // `visit`: nullptr for the step (each piece updated by its kernel, each batch written
  // back), or the read-only pass's visit (nothing written).
  Pipeline(const std::vector<WorkItem>& records, Tiers& tiers, std::int64_t chunk_elements,
           const RecordVisit* visit = nullptr)
      : records_(records), ring_(tiers.ring()), queue_(tiers.io_queue()),
        path_(tiers.offload_file()->path()), chunk_elements_(chunk_elements), visit_(visit),
        order_(records.size()) {
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    std::stable_sort(order_.begin(), order_.end(), [&](std::size_t a, std::size_t b) {
      return file_offset(records_[a]) < file_offset(records_[b]);
    });
    batches_ = make_batches(records_, order_, ring_.slot_bytes());
    read_done_.assign(batches_.size(), 0);
    write_done_.assign(batches_.size(), 0);
    outcome_.updated.assign(records_.size(), 0);
    outcome_.home.assign(records_.size(), 0);
  }

  OffloadOutcome run() {
    const std::size_t slots = static_cast<std::size_t>(ring_.num_slots());
    std::size_t next_read = 0;
    for (std::size_t i = 0; i < batches_.size() && outcome_.error.empty(); ++i) {
      // Read ahead into every slot whose previous batch is home, keeping the slot of
      // batch i - 1 (being written back): up to batch i + slots - 2.
      while (next_read < batches_.size() && next_read + 2 <= i + slots && outcome_.error.empty()) {
        if (next_read >= slots) wait_until(write_done_, next_read - slots);
        if (!outcome_.error.empty()) break;
        start_read(next_read++);
      }
      wait_until(read_done_, i);
      if (!outcome_.error.empty()) break;
      update(i);
      if (visit_ == nullptr) {
        submit(i, memory::IoKind::kWrite);
      } else {
        write_done_[i] = 1;  // read only: the slot is free again
      }
    }
    while (in_flight_ > 0) take_completion();  // nothing may land in the ring after we return
    return std::move(outcome_);
  }

 private:
  char* slot_of(std::size_t batch) const { return ring_.slot(static_cast<int>(batch % ring_.num_slots())); }

  void start_read(std::size_t b) {
    if (batches_[b].needs_read) {
      submit(b, memory::IoKind::kRead);
    } else {
      read_done_[b] = 1;  // fresh state only: nothing to read
    }
  }

  void submit(std::size_t b, memory::IoKind kind) {
    const Batch& batch = batches_[b];
    queue_.submit({kind, slot_of(b), batch.bytes, batch.offset, b});
    ++in_flight_;
  }

  void take_completion() {
    const memory::IoCompletion c = queue_.wait();
    --in_flight_;
    const bool read = c.kind == memory::IoKind::kRead;
    if (c.error != 0) {
      if (outcome_.error.empty()) {
        const Batch& b = batches_[c.tag];
        std::ostringstream message;
        message << "I/O error " << (read ? "reading" : "writing") << " offloaded optimizer state "
                << (read ? "from" : "to") << " '" << path_ << "' (" << b.bytes << " bytes at offset "
                << b.offset << ", io backend " << queue_.name() << "): " << memory::io_error_text(c.error);
        outcome_.error = message.str();
      }
      return;
    }
    (read ? read_done_ : write_done_)[c.tag] = 1;
    if (!read) {
      for (std::size_t i = batches_[c.tag].first; i < batches_[c.tag].last; ++i) outcome_.home[order_[i]] = 1;
    }
  }

  void wait_until(const std::vector<char>& done, std::size_t b) {
    while (!done[b] && outcome_.error.empty()) take_completion();
  }

  // The batch's records, cut into kernel chunks that the threads share.
  void update(std::size_t b) {
    const Batch& batch = batches_[b];
    struct Piece {
      const WorkItem* record;
      char* staged;  // the record in the ring
      std::int64_t begin, n;
    };
    std::vector<Piece> pieces;
    char* staged = slot_of(b);
    for (std::size_t i = batch.first; i < batch.last; ++i) {
      const WorkItem& r = records_[order_[i]];
      const std::int64_t end = r.begin + r.n;
      for (std::int64_t begin = r.begin; begin < end; begin += chunk_elements_) {
        pieces.push_back({&r, staged, begin, std::min(chunk_elements_, end - begin)});
      }
      staged += r.state->record_file_bytes(record_of(r));
    }
    ThreadPool::instance().parallel_for(static_cast<std::int64_t>(pieces.size()), [&](std::int64_t p) {
      const Piece& piece = pieces[static_cast<std::size_t>(p)];
      const WorkItem& r = *piece.record;
      const kernels::Chunk c = r.state->record_chunk(buffers_of(*r.param), piece.staged, piece.begin, piece.n);
      if (r.first_step) r.state->zero_fill(c);
      if (visit_ != nullptr) {
        (*visit_)(r, c, piece.begin);
      } else {
        r.kernel(c, *r.scalars);
      }
    });
    for (std::size_t i = batch.first; i < batch.last; ++i) outcome_.updated[order_[i]] = 1;
  }

  const std::vector<WorkItem>& records_;
  memory::StagingRing& ring_;
  memory::IoQueue& queue_;
  std::string path_;
  std::int64_t chunk_elements_;
  const RecordVisit* visit_;
  std::vector<std::size_t> order_;  // records by file offset
  std::vector<Batch> batches_;
  std::vector<char> read_done_, write_done_;
  int in_flight_ = 0;
  OffloadOutcome outcome_;
};

}  // namespace

OffloadOutcome run_offload_step(const std::vector<WorkItem>& records, Tiers& tiers,
                                std::int64_t chunk_elements) {
  if (records.empty()) return {};
  return Pipeline(records, tiers, chunk_elements).run();
}

std::string read_offload_state(const std::vector<WorkItem>& records, Tiers& tiers, std::int64_t chunk_elements,
                               const RecordVisit& visit) {
  if (records.empty()) return {};
  return Pipeline(records, tiers, chunk_elements, &visit).run().error;
}

}  // namespace octopage::engine
