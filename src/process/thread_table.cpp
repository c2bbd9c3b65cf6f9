#include "process/thread_table.h"

#include <algorithm>

namespace dprobe::process {

ResumeHow internal_resume_mode(const ThreadInfo& thread) {
  if (thread.stop == StopKind::GroupStop) return ResumeHow::Listen;
  if (thread.step_pending) return ResumeHow::Step;
  return ResumeHow::Cont;
}

int internal_resume_signal(const ThreadInfo& thread) {
  return thread.stop == StopKind::SignalDelivery ? thread.stop_signal : 0;
}

bool is_stopped(ThreadState state) {
  return state == ThreadState::Stopped || state == ThreadState::Queued ||
         state == ThreadState::Held;
}

bool needs_interrupt(ThreadState state) {
  return state == ThreadState::Running || state == ThreadState::Listening;
}

bool awaits_stop(ThreadState state) {
  return state == ThreadState::Starting || state == ThreadState::Stopping;
}

ThreadInfo& ThreadTable::add(pid_t tid, ThreadState state) {
  auto [it, inserted] = threads_.try_emplace(tid);
  if (inserted) {
    it->second.tid = tid;
    it->second.state = state;
  }
  return it->second;
}

ThreadInfo* ThreadTable::find(pid_t tid) {
  auto it = threads_.find(tid);
  return it == threads_.end() ? nullptr : &it->second;
}

const ThreadInfo* ThreadTable::find(pid_t tid) const {
  auto it = threads_.find(tid);
  return it == threads_.end() ? nullptr : &it->second;
}

void ThreadTable::remove(pid_t tid) {
  threads_.erase(tid);
}

std::vector<pid_t> ThreadTable::live_tids() const {
  std::vector<pid_t> out;
  for (const auto& [tid, info] : threads_) {
    if (info.state != ThreadState::Zombie) out.push_back(tid);
  }
  return out;
}

std::vector<pid_t> ThreadTable::all_tids() const {
  std::vector<pid_t> out;
  for (const auto& [tid, info] : threads_)
    out.push_back(tid);
  return out;
}

std::vector<pid_t> ThreadTable::tids_in(std::initializer_list<ThreadState> states) const {
  std::vector<pid_t> out;
  for (const auto& [tid, info] : threads_) {
    if (std::find(states.begin(), states.end(), info.state) != states.end()) out.push_back(tid);
  }
  return out;
}

bool ThreadTable::any_in(std::initializer_list<ThreadState> states) const {
  return std::any_of(threads_.begin(), threads_.end(), [&](const auto& entry) {
    return std::find(states.begin(), states.end(), entry.second.state) != states.end();
  });
}

} // namespace dprobe::process
