"""Egocentric vision students distilled from privileged teachers.

- ``kv_cache``: a rolling key/value cache and the causal transformer that steps with it
  (reusable by any causal model over a stream, e.g. a world model's student);
- ``students``: the CNN + proprio students with no memory (frame stack), a GRU or a causal
  transformer, and ``StudentPolicy`` (a student as a batched-env policy);
- ``dagger``: DAgger distillation (losses, the on-policy buffer, the ``Distiller`` runner);
- ``finetune``: optional PPO fine-tuning of a student with a KL penalty toward its teacher.

Importing ``distill`` registers the student checkpoint kind with ``agents.make_policy``.
"""

from agents.policies import register_policy_kind
from distill.students import load_student_policy

register_policy_kind("student", load_student_policy)
