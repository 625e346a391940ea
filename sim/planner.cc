#include "sim/planner.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <random>
#include <thread>

namespace tandem {

namespace {

bool MeetsGoal(const RequestRecord& rec, double ttft_ms, double tpot_ms) {
  const bool finished = rec.finish_reason == FinishReason::kStop || rec.finish_reason == FinishReason::kLength;
  const bool ttft = ttft_ms <= 0 || (rec.ttft_ms() >= 0 && rec.ttft_ms() <= ttft_ms);
  const bool tpot = tpot_ms <= 0 || rec.tpot_ms() <= tpot_ms;
  return finished && ttft && tpot;
}

}  // namespace

double JointAttainment(const SimResult& r, double ttft_ms, double tpot_ms) {
  if (r.records.empty()) return 0;
  int64_t met = 0;
  for (const RequestRecord& rec : r.records) met += MeetsGoal(rec, ttft_ms, tpot_ms);
  return static_cast<double>(met) / static_cast<double>(r.records.size());
}

namespace {

// `n` requests (the workload's, cycled) arriving as a Poisson process at `rate`.
std::vector<SimRequest> AtRate(const std::vector<SimRequest>& workload, double rate, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  std::vector<SimRequest> out;
  out.reserve(n);
  double t = 0;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(workload[i % workload.size()]);
    t += gap(rng);
    out.back().arrival_us = static_cast<int64_t>(t * 1e6);
  }
  return out;
}

// A request's end-to-end latency at the limit of its targets: how long the system takes to fill
// up to its steady state (and to drain after the last arrival).
double SettleSeconds(const PlanOptions& o) {
  double out = 0;
  for (const SimRequest& r : o.workload) out += r.output_len;
  out /= static_cast<double>(o.workload.size());
  const double tpot_ms = o.tpot_ms > 0 ? o.tpot_ms : 100;
  return (std::max(0.0, o.ttft_ms) + out * tpot_ms) / 1e3;
}

struct Setup {
  int32_t prefill_size = 0, num_prefill = 0, decode_size = 0, num_decode = 0;
  int32_t colocated_size = 0, num_colocated = 0;
  bool instant_prefill = false;  // the decode phase alone: prompts take no time
  bool single_token = false;     // the prefill phase alone: every answer is its first token
  int groups = 1;                // machines holding both phases (SimOptions::node_groups)
  bool cross_node = false;       // KV moves between machines (PlanOptions::cross_node_bytes_per_us)
};

// The KV link between machines in place of the profile's (which describes the one inside).
void UseCrossNodeLink(double bytes_per_us, LatencyProfile* p) {
  const double per_layer_us = p->transfer.empty() ? 0 : p->transfer.front().per_layer_us;
  p->transfer = {{0, per_layer_us, bytes_per_us}};
}

class Planner {
 public:
  explicit Planner(const PlanOptions& o) : o_(o) {}

  const LatencyProfile& ProfileOf(int32_t size) const {
    for (const InstanceKind& k : o_.kinds) {
      if (k.size == size) return k.profile;
    }
    return o_.kinds.front().profile;
  }

  Result<SimResult> Run(const Setup& s, double rate) const {
    SimOptions so = o_.node;
    so.router.first_token_timeout_us = 0;  // a request late for its SLO still counts as late, not failed
    so.router.inter_token_timeout_us = 0;
    so.router.max_queued = 1 << 30;
    so.router.token_times = false;
    so.coalesce_tokens = true;
    if (s.num_colocated > 0) {
      so.num_colocated = s.num_colocated;
      so.profile = ProfileOf(s.colocated_size);
    } else {
      so.num_prefill = s.num_prefill;
      so.num_decode = s.num_decode;
      so.profile = ProfileOf(s.prefill_size);
      so.decode_profile = ProfileOf(s.decode_size);
      if (s.instant_prefill) so.profile.prefill = {{0, 1, 0, 0}};
      so.node_groups = s.groups;
      if (s.cross_node && o_.cross_node_bytes_per_us > 0) UseCrossNodeLink(o_.cross_node_bytes_per_us, &so.profile);
    }
    std::vector<SimRequest> requests = AtRate(o_.workload, rate, RequestsAt(rate), o_.seed);
    for (SimRequest& r : requests) {
      r.slo.ttft_ms = o_.ttft_ms;
      r.slo.tpot_ms = o_.tpot_ms;
      if (s.single_token) r.output_len = 1;
    }
    ASSIGN_OR_RETURN(auto policy, CreatePlacementPolicy("least-loaded"));
    return Simulate(so, std::move(policy), requests);
  }

  // Enough requests to cover kSettles settling times at `rate` (the workload's size at least,
  // max_requests at most): a finite burst at a high rate would otherwise finish in a few steps
  // without the deployment ever reaching its steady state.
  size_t RequestsAt(double rate) const {
    const double wanted = std::ceil(rate * kSettles * SettleSeconds(o_));
    const size_t floor = o_.workload.size();
    const size_t cap = std::max<size_t>(floor, static_cast<size_t>(std::max<int64_t>(1, o_.max_requests)));
    if (wanted > static_cast<double>(cap)) capped_ = true;
    return std::clamp(static_cast<size_t>(std::min(wanted, 1e12)), floor, cap);
  }

  // Attainment in the steady state: requests arriving after the first settling time and before
  // the last one (the fill and the drain see less load), when that window holds at least half.
  Result<double> Attainment(const Setup& s, double rate) {
    ASSIGN_OR_RETURN(SimResult r, Run(s, rate));
    ++simulations_;
    const double attained = SteadyAttainment(r);
    samples_.emplace_back(rate, attained);
    return attained;
  }

  double SteadyAttainment(const SimResult& r) const {
    const int64_t settle_us = static_cast<int64_t>(SettleSeconds(o_) * 1e6);
    int64_t last = 0;
    for (const RequestRecord& rec : r.records) last = std::max(last, rec.arrival_us);
    int64_t in_window = 0, met_in_window = 0, met = 0;
    for (const RequestRecord& rec : r.records) {
      const bool ok = MeetsGoal(rec, o_.ttft_ms, o_.tpot_ms);
      met += ok;
      if (rec.arrival_us >= settle_us && rec.arrival_us <= last - settle_us) {
        ++in_window;
        met_in_window += ok;
      }
    }
    if (r.records.empty()) return 0.0;
    if (2 * in_window >= static_cast<int64_t>(r.records.size())) {
      return static_cast<double>(met_in_window) / static_cast<double>(in_window);
    }
    return static_cast<double>(met) / static_cast<double>(r.records.size());
  }

  bool capped() const { return capped_; }

  // The highest rate meeting the goal: stepping up or down by `step` from a first guess (x2 for a
  // rough guess; less for a whole deployment, whose phase-alone prediction is close), then
  // bisection.
  Result<double> MaxRate(const Setup& s, double guess, double step = 2, double tolerance = 0) {
    if (tolerance <= 0) tolerance = o_.tolerance;
    double lo = 0, hi = 0, r = std::max(guess, 1e-3);
    ASSIGN_OR_RETURN(double a, Attainment(s, r));
    if (a >= o_.attainment) {
      lo = r;
      // A finite workload is served at any rate once it all fits in a few steps: beyond 10^4 x
      // the first guess the deployment is not what limits the rate.
      const int tries = static_cast<int>(std::ceil(std::log(1e4) / std::log(step)));
      for (int i = 0; i < tries && hi == 0; ++i) {
        r *= step;
        ASSIGN_OR_RETURN(a, Attainment(s, r));
        (a >= o_.attainment ? lo : hi) = r;
      }
    } else {
      hi = r;
      // Below one request per ten settling times requests no longer meet each other: what misses
      // there misses alone, at any lower rate too (and a lower rate only simulates longer idle
      // spans: a deployment that can never meet the goal would run for days of virtual time).
      const double floor_rate = 1.0 / (10 * std::max(1e-3, SettleSeconds(o_)));
      const int tries = static_cast<int>(std::ceil(std::log(1e12) / std::log(step)));
      for (int i = 0; i < tries && lo == 0; ++i) {
        if (r < floor_rate) return 0.0;
        r /= step;
        ASSIGN_OR_RETURN(a, Attainment(s, r));
        (a >= o_.attainment ? lo : hi) = r;
      }
    }
    if (lo == 0 || hi == 0) return lo;
    while ((hi - lo) / hi > tolerance) {
      const double mid = (lo + hi) / 2;
      ASSIGN_OR_RETURN(a, Attainment(s, mid));
      (a >= o_.attainment ? lo : hi) = mid;
    }
    return lo;
  }

  int64_t simulations() const { return simulations_; }
  // Every (rate, attainment) simulated, by rate.
  std::vector<std::pair<double, double>> samples() const {
    auto out = samples_;
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  static constexpr double kSettles = 4;
  const PlanOptions& o_;
  int64_t simulations_ = 0;
  std::vector<std::pair<double, double>> samples_;
  mutable bool capped_ = false;
};

// A first guess of one instance's rate: the prompts it can prefill per second.
double Guess(const LatencyProfile& p, const std::vector<SimRequest>& w) {
  double prompt = 0;
  for (const SimRequest& r : w) prompt += r.prompt_len;
  prompt /= std::max<size_t>(1, w.size());
  return 1e6 / std::max(1.0, p.PrefillUs(static_cast<int64_t>(prompt)));
}

// Runs `jobs` on up to `threads` threads, each taking the next job when it is done (runs differ
// in length by orders of magnitude); the first error in job order wins.
Status RunAll(std::vector<std::function<Status()>>& jobs, int threads) {
  std::vector<Status> results(jobs.size(), Status::Ok());
  std::atomic<size_t> next{0};
  const auto worker = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) results[i] = jobs[i]();
  };
  std::vector<std::thread> pool;
  const size_t n = std::min(jobs.size(), static_cast<size_t>(std::max(1, threads)));
  for (size_t t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  for (Status& s : results) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

std::string Name(const Deployment& d) {
  if (d.joint) {
    return std::to_string(d.machines) + " machines x (" + std::to_string(d.num_prefill / d.machines) + "x" +
           std::to_string(d.prefill_size) + "P + " + std::to_string(d.num_decode / d.machines) + "x" +
           std::to_string(d.decode_size) + "D)";
  }
  if (d.num_colocated > 0)
    return std::to_string(d.num_colocated) + "x" + std::to_string(d.colocated_size) + " colocated";
  return std::to_string(d.num_prefill) + "x" + std::to_string(d.prefill_size) + "P + " + std::to_string(d.num_decode) +
         "x" + std::to_string(d.decode_size) + "D";
}

}  // namespace

// How many deployments, best predicted first, are simulated whole: each costs a bisection over
// the whole cluster, the search's largest runs.
constexpr size_t kWholeDeployments = 6;

Result<Plan> MakePlan(const PlanOptions& o) {
  if (o.kinds.empty()) return InvalidArgumentError("no instance profile to plan with");
  if (o.workload.empty()) return InvalidArgumentError("no workload to plan for");
  if (o.ttft_ms <= 0 && o.tpot_ms <= 0) return InvalidArgumentError("no SLO: give a TTFT and/or a TPOT target");
  if (!(o.attainment > 0 && o.attainment <= 1)) return InvalidArgumentError("the attainment goal must be in (0, 1]");
  if (o.resources <= 0 && o.rate <= 0) return InvalidArgumentError("give a resource budget or a rate to provision for");
  if (o.per_node < 0 || (o.per_node > 0 && o.resources > 0 && o.resources < o.per_node)) {
    return InvalidArgumentError("the budget (" + std::to_string(o.resources) + ") is less than one machine (" +
                                std::to_string(o.per_node) + ")");
  }
  if (o.cross_node_bytes_per_us < 0) return InvalidArgumentError("the cross-machine KV rate must be positive");
  for (const InstanceKind& k : o.kinds) {
    if (k.size < 1) return InvalidArgumentError("an instance size must be at least 1");
    if (k.profile.prefill.empty() || k.profile.decode.empty()) {
      return InvalidArgumentError("the profile for size " + std::to_string(k.size) + " has no prefill or decode model");
    }
  }
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Plan plan;
  const size_t n = o.kinds.size();
  plan.prefill.resize(n);
  plan.decode.resize(n);
  plan.colocated.resize(n);
  plan.decode_in_machine.resize(n);
  // The joint search needs the decode phase with the KV inside a machine when that differs.
  const bool in_machine_differs = o.per_node > 0 && o.cross_node_bytes_per_us > 0;
  std::vector<int64_t> sims(4 * n, 0);
  const int32_t per_node = o.per_node;
  const auto fits = [&](int32_t size) { return per_node <= 0 || size <= per_node; };
  std::atomic<bool> capped{false};
  std::vector<std::function<Status()>> jobs;
  for (size_t i = 0; i < n; ++i) {
    const int32_t size = o.kinds[i].size;
    plan.prefill[i] = plan.decode[i] = plan.decode_in_machine[i] = plan.colocated[i] = {size, 0};
    if (!fits(size)) continue;  // larger than a machine: not a candidate
    const double guess = Guess(o.kinds[i].profile, o.workload);
    // Prefill alone: one prefill instance, a decode side that never limits (one token answers).
    jobs.push_back([&, i, size, guess]() -> Status {
      Planner p(o);
      Setup s{size, 1, size, 1, 0, 0, false, true};
      ASSIGN_OR_RETURN(double r, p.MaxRate(s, guess));
      plan.prefill[i] = {size, r};
      sims[3 * i] = p.simulations();
      if (p.capped()) capped = true;
      return Status::Ok();
    });
    // Decode alone: prompts take no time, the transfer and the decode node are real (between
    // machines, and inside one for the joint search).
    for (const bool cross : {true, false}) {
      if (!cross && !in_machine_differs) continue;
      jobs.push_back([&, i, size, guess, cross]() -> Status {
        Planner p(o);
        Setup s{size, 1, size, 1, 0, 0, true, false, 1, cross};
        ASSIGN_OR_RETURN(double r, p.MaxRate(s, guess));
        (cross ? plan.decode : plan.decode_in_machine)[i] = {size, r};
        sims[cross ? 3 * i + 1 : 3 * n + i] = p.simulations();
        if (p.capped()) capped = true;
        return Status::Ok();
      });
    }
    jobs.push_back([&, i, size, guess]() -> Status {
      Planner p(o);
      Setup s;
      s.colocated_size = size;
      s.num_colocated = 1;
      ASSIGN_OR_RETURN(double r, p.MaxRate(s, guess));
      plan.colocated[i] = {size, r};
      sims[3 * i + 2] = p.simulations();
      if (p.capped()) capped = true;
      return Status::Ok();
    });
  }
  RETURN_IF_ERROR(RunAll(jobs, threads));
  for (int64_t s : sims) plan.simulations += s;
  if (!in_machine_differs) plan.decode_in_machine = plan.decode;
  const int32_t machines_budget = per_node > 0 ? o.resources / per_node : 0;

  // Candidate deployments: every (prefill size, decode size) pair replicated to the budget or the
  // rate, and colocated instances of every size.
  std::vector<Deployment> candidates;
  for (const PhaseRate& p : plan.prefill) {
    for (const PhaseRate& d : plan.decode) {
      if (p.rate <= 0 || d.rate <= 0 || !fits(p.size) || !fits(d.size)) continue;
      Deployment best;
      if (per_node > 0) {                                              // whole machines of one phase each
        const int32_t pp = per_node / p.size, dd = per_node / d.size;  // instances per machine
        int32_t mp = 0, md = 0;
        if (o.rate > 0) {
          mp = static_cast<int32_t>(std::ceil(std::ceil(o.rate / p.rate) / pp));
          md = static_cast<int32_t>(std::ceil(std::ceil(o.rate / d.rate) / dd));
          best.predicted_rate = std::min(mp * pp * p.rate, md * dd * d.rate);
        } else {
          for (int32_t m = 1; m < machines_budget; ++m) {
            const double predicted = std::min(m * pp * p.rate, (machines_budget - m) * dd * d.rate);
            if (predicted > best.predicted_rate) {
              mp = m;
              md = machines_budget - m;
              best.predicted_rate = predicted;
            }
          }
          if (mp == 0) continue;
        }
        best.num_prefill = mp * pp;
        best.num_decode = md * dd;
        best.machines = mp + md;
      } else if (o.rate > 0) {
        best.num_prefill = static_cast<int32_t>(std::ceil(o.rate / p.rate));
        best.num_decode = static_cast<int32_t>(std::ceil(o.rate / d.rate));
        best.predicted_rate = std::min(best.num_prefill * p.rate, best.num_decode * d.rate);
      } else {
        for (int32_t np = 1; np * p.size + d.size <= o.resources; ++np) {
          const int32_t nd = (o.resources - np * p.size) / d.size;
          const double predicted = std::min(np * p.rate, nd * d.rate);
          if (predicted > best.predicted_rate) {
            best.num_prefill = np;
            best.num_decode = nd;
            best.predicted_rate = predicted;
          }
        }
        if (best.num_prefill == 0) continue;
      }
      best.prefill_size = p.size;
      best.decode_size = d.size;
      best.resources = per_node > 0 ? best.machines * per_node : best.num_prefill * p.size + best.num_decode * d.size;
      candidates.push_back(best);
    }
  }
  // Joint (low node affinity): the best mix of both phases inside one machine, replicated.
  for (const PhaseRate& p : per_node > 0 ? plan.prefill : std::vector<PhaseRate>{}) {
    for (const PhaseRate& d : plan.decode_in_machine) {
      if (p.rate <= 0 || d.rate <= 0) continue;
      int32_t unit_p = 0, unit_d = 0;
      double unit_rate = 0;
      for (int32_t np = 1; np * p.size + d.size <= per_node; ++np) {
        for (int32_t nd = 1; np * p.size + nd * d.size <= per_node; ++nd) {
          const double predicted = std::min(np * p.rate, nd * d.rate);
          if (predicted > unit_rate) {
            unit_p = np;
            unit_d = nd;
            unit_rate = predicted;
          }
        }
      }
      if (unit_p == 0) continue;
      Deployment j;
      j.joint = true;
      j.machines = o.rate > 0 ? static_cast<int32_t>(std::ceil(o.rate / unit_rate)) : machines_budget;
      if (j.machines < 1) continue;
      j.prefill_size = p.size;
      j.decode_size = d.size;
      j.num_prefill = j.machines * unit_p;
      j.num_decode = j.machines * unit_d;
      j.predicted_rate = j.machines * unit_rate;
      j.resources = j.machines * per_node;
      candidates.push_back(j);
    }
  }
  for (const PhaseRate& c : plan.colocated) {
    if (c.rate <= 0 || !fits(c.size)) continue;
    Deployment d;
    d.colocated_size = c.size;
    if (per_node > 0) {
      const int32_t per_machine = per_node / c.size;
      d.machines =
          o.rate > 0 ? static_cast<int32_t>(std::ceil(std::ceil(o.rate / c.rate) / per_machine)) : machines_budget;
      d.num_colocated = d.machines * per_machine;
      d.resources = d.machines * per_node;
    } else {
      d.num_colocated = o.rate > 0 ? static_cast<int32_t>(std::ceil(o.rate / c.rate)) : o.resources / c.size;
      d.resources = d.num_colocated * c.size;
    }
    if (d.num_colocated < 1) continue;
    d.predicted_rate = d.num_colocated * c.rate;
    candidates.push_back(d);
  }
  // The most promising by prediction are simulated whole.
  std::sort(candidates.begin(), candidates.end(), [](const Deployment& a, const Deployment& b) {
    return a.predicted_rate / a.resources > b.predicted_rate / b.resources;
  });
  // The best of each placement family is simulated whole even when others predict better.
  std::vector<Deployment> chosen;
  for (const Deployment& d : candidates) {
    const auto family = [](const Deployment& x) { return x.num_colocated > 0 ? 2 : x.joint ? 1 : 0; };
    const bool first_of_family =
        std::none_of(chosen.begin(), chosen.end(), [&](const Deployment& c) { return family(c) == family(d); });
    if (chosen.size() < kWholeDeployments || first_of_family) chosen.push_back(d);
  }
  candidates = std::move(chosen);
  std::vector<int64_t> joint_sims(candidates.size(), 0);
  jobs.clear();
  for (size_t i = 0; i < candidates.size(); ++i) {
    jobs.push_back([&, i]() -> Status {
      Deployment& d = candidates[i];
      Planner p(o);
      Setup s{d.prefill_size,           d.num_prefill,   d.decode_size, d.num_decode,
              d.colocated_size,         d.num_colocated, false,         false,
              d.joint ? d.machines : 1, !d.joint};
      ASSIGN_OR_RETURN(d.goodput, p.MaxRate(s, d.predicted_rate, 1.25));
      if (o.rate > 0) {
        ASSIGN_OR_RETURN(d.attainment_at_rate, p.Attainment(s, o.rate));
      }
      d.samples = p.samples();
      joint_sims[i] = p.simulations();
      if (p.capped()) capped = true;
      return Status::Ok();
    });
  }
  RETURN_IF_ERROR(RunAll(jobs, threads));
  for (int64_t s : joint_sims) plan.simulations += s;
  for (Deployment& d : candidates) d.name = Name(d);
  std::sort(candidates.begin(), candidates.end(), [&](const Deployment& a, const Deployment& b) {
    if (o.rate > 0) {  // for a rate: the fewest resources that meet the goal there
      const bool am = a.attainment_at_rate >= o.attainment, bm = b.attainment_at_rate >= o.attainment;
      if (am != bm) return am;
      if (a.resources != b.resources) return a.resources < b.resources;
    }
    return a.per_resource() > b.per_resource();
  });
  plan.ranked = std::move(candidates);
  plan.capped = capped.load();
  return plan;
}

}  // namespace tandem
