"""STDP demo: a neuron learns a spike pattern hidden in Poisson noise.

Step by step with the public API (``neurocorex demo`` runs the same through
``neurocorex.demos.run_stdp``, with progress bars, a distractor control and
more plots).  Runs on any device: ``python examples/stdp_pattern.py rtl``.
"""

import sys

import numpy as np

from neurocorex import plot
from neurocorex.demos import make_pattern_task, stdp_network, open_for

device = sys.argv[1] if len(sys.argv) > 1 else "model"
task = make_pattern_task(seed=0)              # 100 afferents, 30 of them carry the pattern
net = stdp_network(task.inputs, seed=0)       # one LIF neuron, plastic inputs, STDP settings
x_learn, _, _ = task.stream(24000)
x_test, starts, distractors = task.stream(6000, distractors=True)

with open_for(device, net) as dev:
    dev.load(net)
    dev.set_learning(True)
    dev.run(24000, x_learn)                    # on-chip STDP
    dev.set_learning(False)
    dev.reset()
    spikes = dev.run(6000, x_test).spikes
    w_rec, w_in = dev.read_weights()

s = task.score(spikes, starts, distractors)
print(f"hit rate {s['hit_rate'][0]:.2f}, distractor {s['distractor_rate'][0]:.2f}, "
      f"false alarms {s['false_alarms_per_1000'][0]:.2f} per 1000 steps")
pattern = np.isin(np.arange(task.inputs), task.afferents)
print(f"mean weight: pattern afferents {w_in[pattern].mean():.1f}, others {w_in[~pattern].mean():.1f}")
plot.save(plot.raster(spikes[:800], x_test[:800], highlight=pattern), "out/example_stdp_raster.png")
