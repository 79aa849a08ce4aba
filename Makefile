# Benchmarks: the operator (release build) against the local kube-apiserver + etcd
# (hack/local-cluster.sh) and the CodeBuild simulator. Results: target/bench/results.md
# (the table) and target/bench/results.csv. See "Performance" in README.md.

CARGO ?= cargo
BENCH_ARGS ?=

.PHONY: bench bench-quick bench-build

bench-build:
	$(CARGO) build --release -p codebuild-operator -p codebuild-sim -p codebuild-bench

# Full run (about 30 minutes on 2 cores). Waits up to 40 minutes for a quiet machine.
bench: bench-build
	target/release/codebuild-bench --wait-quiet-minutes 40 $(BENCH_ARGS)

# Small sizes and short windows, for development (a few minutes).
bench-quick: bench-build
	target/release/codebuild-bench --quick $(BENCH_ARGS)
