# The contest scenarios the make targets run, by SCENARIO: the one place that says which k6
# script each is, its VUs (the contest's MAX_REQUESTS), the k6 variables it takes and the
# processors' fees. Sourced by run.sh, load_test.sh, bench.sh,
# compose_test.sh and contest_run.sh.
#
#   preview     k6/contest.js, 550 VUs, 60 s; fees 5 % / 15 % (the contest's preview)
#   final       k6/final.js, 603 VUs, 300 s; fees 7 % / 10 % (the run that ranked the entries)
#   final-late  the final with the default also failing (at 2,000 ms) in its last 30 s
#
# Sets SCENARIO_SCRIPT, SCENARIO_VUS, SCENARIO_K6_ENV (an array of -e arguments), and
# exports SIM_DEFAULT_FEE / SIM_FALLBACK_FEE (the scenario's fees unless given), which
# run.sh and compose.sim.yml hand to the simulators as SIM_FEE.
SCENARIO=${SCENARIO:-preview}
case $SCENARIO in
  preview) SCENARIO_SCRIPT=k6/contest.js SCENARIO_VUS=550 SCENARIO_K6_ENV=() fees=(0.05 0.15) ;;
  final) SCENARIO_SCRIPT=k6/final.js SCENARIO_VUS=603 SCENARIO_K6_ENV=(-e FINAL_LATE=0) fees=(0.07 0.10) ;;
  final-late) SCENARIO_SCRIPT=k6/final.js SCENARIO_VUS=603 SCENARIO_K6_ENV=(-e FINAL_LATE=1) fees=(0.07 0.10) ;;
  *) echo "SCENARIO=$SCENARIO: expected preview, final or final-late" >&2; exit 2 ;;
esac
export SIM_DEFAULT_FEE=${SIM_DEFAULT_FEE:-${fees[0]}} SIM_FALLBACK_FEE=${SIM_FALLBACK_FEE:-${fees[1]}}
for fee in "$SIM_DEFAULT_FEE" "$SIM_FALLBACK_FEE"; do
  [[ $fee =~ ^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$ ]] || {
    echo "SIM_DEFAULT_FEE / SIM_FALLBACK_FEE=$fee: a fraction from 0 to 1, at most 6 decimals" >&2; exit 2; }
done
unset fees fee
