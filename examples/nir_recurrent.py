"""Build a recurrent CubaLIF network with the `nir` package and run it on the core.

    python examples/nir_recurrent.py [--device model] [--out rnn.nir]

The graph is written in the NIR file format, imported with
``Network.from_nir`` (which reports the quantisation), run on a device, and
exported back with ``Network.to_nir`` (STDP settings travel in the metadata).
The same file runs from the command line:

    neurocorex run rnn.nir --device model --steps 200 --out spikes.npz

Time constants are in ms and the step is 1 ms, so the command line's default
``dt`` (the graph's time unit, 1.0) is right for this file.
"""

import argparse

import nir
import numpy as np

import neurocorex as nx


def build_graph(n=32, m=16, seed=0):
    rng = np.random.default_rng(seed)
    full = lambda x: np.full(n, float(x))      # noqa: E731
    nodes = {
        "input": nir.Input(input_type={"input": np.array([m])}),
        "w_in": nir.Linear(weight=rng.uniform(0.0, 3.0, (n, m))),
        "rnn": nir.CubaLIF(tau_syn=full(5.0), tau_mem=full(20.0), r=full(1.0),
                           v_leak=full(0.0), v_threshold=full(1.0), v_reset=full(0.0)),
        "w_rec": nir.Linear(weight=rng.uniform(-9.0, 6.0, (n, n)) * (rng.random((n, n)) < 0.3)),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("input", "w_in"), ("w_in", "rnn"), ("rnn", "w_rec"), ("w_rec", "rnn"),
             ("rnn", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="model")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", default="rnn.nir", help="where to write the graph")
    args = ap.parse_args()

    graph = build_graph()
    nir.write(args.out, graph)
    net = nx.Network.from_nir(args.out, dt=1.0)          # dt in the graph's unit (ms)
    print(net.nir_report)

    x = np.random.default_rng(1).random((args.steps, net.inputs)) < 0.15
    with nx.connect(args.device, neurons=net.neurons, inputs=net.inputs) as dev:
        dev.load(net)
        rec = dev.run(args.steps, x)
    print(f"\n{rec}; mean rate {rec.spikes.mean():.3f} spikes/step/neuron")
    for j in range(8):
        print(f"n{j:02d} " + "".join("|" if s else "." for s in rec.spikes[:100, j]))

    # export: the NIR graph carries the STDP settings in its metadata
    net.stdp.enabled = True
    net.stdp.a_plus, net.stdp.a_minus = 16, 12
    net.stdp.set_taus(20.0, 20.0, net.dt)
    net.plastic_rec = net.w_rec != 0
    out = net.to_nir()
    print("\nexported nodes:", ", ".join(f"{k} ({type(v).__name__})" for k, v in out.nodes.items()))
    print("metadata stdp:", out.metadata["neurocorex"]["stdp"])


if __name__ == "__main__":
    main()
