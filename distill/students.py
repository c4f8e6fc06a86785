"""Egocentric vision students: a CNN over the onboard camera plus proprioception, with a memory.

- image: ``depth_layers`` (EgoPush: one depth layer per role, encoded by one shared CNN into one
  embedding per role, the embeddings the relational alignment loss compares) or ``camera``
  (soccer: uint8 RGB, one CNN over the three channels; with ``segmentation``, the env's segmentation
  classes one-hot as more channels of that CNN);
- memory: ``none`` (a stack of the last ``frame_stack`` frames' features; 1 = reactive, like the
  EgoPush student), ``gru``, ``transformer`` (causal, over the last ``window`` frames, stepped
  with the ``KVCache`` of ``distill.kv_cache``), ``map`` (``depth_layers`` only: a top-down map
  of the boxes seen, kept in place by wheel odometry, ``distill.egopush.odometry_map``, read by a second CNN), or
  ``geometric`` (EgoPush ``depth_layers`` with ``head=teacher`` only: the teacher's observation
  estimated by geometry, ``distill.egopush.geometry``, read beside the image; the student's estimate is it
  plus a learnt correction that starts at zero);
- head: a tanh-squashed Gaussian mean and a state-independent log standard deviation, the same
  action distribution as the teachers (``agents.actor.GaussianActor``). The mean comes from a small
  MLP (``head=mlp``), or (``head=teacher``) from the teacher's own network applied to the student's
  estimate of the teacher's (normalised) observation: the student learns to see what the teacher
  reads, and the teacher's frozen weights turn that into the action, so a student whose estimate is
  right acts exactly as its teacher, the teacher's search and recovery behaviours included.

Training runs on sequences ``[B, T, ...]`` with episode starts ``first`` ``[B, T]``; acting runs
one step at a time with a per-row state (``init_state`` / ``step``). ``StudentPolicy`` wraps a
student as a policy of the batched envs (``agents.policies.Policy``), resetting a world's memory
when its episode ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents import checkpoint
from agents.actor import RunningNorm, mlp
from distill.egopush.geometry import GeoKeypoints
from distill.egopush.odometry_map import EgoMap
from distill.encoders import ConvEncoder
from distill.memory import Memory, make_memory
from distill.student_config import IMAGE_GROUPS, StudentConfig, student_config

STUDENT_FORMAT = 2
"""Version of the saved weights' layout: 2 since each memory is a module of its own (``distill.memory``)."""

STUDENT_SCHEMA = {
    "env": checkpoint.TEXT,
    "env_config": checkpoint.FIELDS,
    "image_group": (lambda v: v in IMAGE_GROUPS, f"one of {IMAGE_GROUPS}"),
    "image_shape": checkpoint.integers(1, 1024, 3),
    "proprio_dim": checkpoint.integer(1, 10_000),
    "act_dim": checkpoint.integer(1, 1024),
    "student": checkpoint.FIELDS,
}
"""What a student checkpoint's metadata must hold, checked before the network is built."""

__all__ = ["IMAGE_GROUPS", "Student", "StudentConfig", "StudentPolicy", "load_student_policy", "student_config"]


class Student(nn.Module):
    """Image group ``[.., C, H, W]`` + ``proprio`` ``[.., P]`` -> action mean ``[.., act_dim]``.

    Args:
        image_group: ``depth_layers`` or ``camera``.
        image_shape: ``(C, H, W)`` of that group.
        proprio_dim, act_dim: sizes of ``proprio`` and of the action.
        cfg: network settings.
        geometry: ``memory=map`` only: the robot's camera and wheel geometry
            (``EgoPushEnv.camera_geometry()``); ``memory=geometric``: that and the task's
            (``EgoPushEnv.keypoint_geometry()``). Saved with the student.
        seg_classes: ``cfg.segmentation`` only: classes of the env's ``segmentation`` image.
        teacher_dims: ``head=teacher`` only: the teacher's observation size and hidden layers (its
            weights are loaded with ``load_teacher_head``).
    """

    def __init__(
        self,
        image_group: str,
        image_shape: tuple[int, int, int],
        proprio_dim: int,
        act_dim: int,
        cfg: StudentConfig,
        geometry: dict[str, Any] | None = None,
        seg_classes: int = 0,
        teacher_dims: tuple[int, tuple[int, ...]] | None = None,
    ) -> None:
        super().__init__()
        if image_group not in IMAGE_GROUPS:
            raise ValueError(f"image_group must be one of {IMAGE_GROUPS}, got {image_group!r}")
        if cfg.segmentation and (image_group != "camera" or seg_classes < 2):
            raise ValueError(
                "segmentation needs an RGB student (image group 'camera') and the number of segmentation "
                f"classes (>= 2), got image group {image_group!r} and {seg_classes} classes"
            )
        if cfg.head == "teacher" and teacher_dims is None:
            raise ValueError("head 'teacher' needs the teacher's observation size and hidden layers (teacher_dims)")
        self.seg_classes = seg_classes if cfg.segmentation else 0
        self.image_group, self.image_shape, self.proprio_dim, self.act_dim, self.cfg = (
            image_group,
            tuple(image_shape),
            proprio_dim,
            act_dim,
            cfg,
        )
        C, H, W = image_shape
        self.roles = C if image_group == "depth_layers" else 0
        self.encoder = ConvEncoder(1 if self.roles else C + self.seg_classes, (H, W), cfg.embed)
        self.proprio_norm = RunningNorm(proprio_dim)
        self.geometry = geometry
        frame = cfg.embed * max(1, self.roles) + proprio_dim
        self.memory: Memory = make_memory(
            cfg, frame, image_shape=(C, H, W), roles=self.roles, geometry=geometry, teacher_dims=teacher_dims
        )
        feat = self.feat_dim = self.memory.out_dim
        self.teacher_dims = None
        if cfg.head == "teacher":
            obs_dim, hidden = int(teacher_dims[0]), tuple(int(h) for h in teacher_dims[1])
            self.teacher_dims = (obs_dim, hidden)
            self.head = mlp(feat, (2 * cfg.hidden, 2 * cfg.hidden), obs_dim)  # the estimate
            if self.memory.estimate_prior(torch.zeros(1, feat)) is not None:  # a correction to a prior: none at first
                last = [m for m in self.head.modules() if isinstance(m, nn.Linear)][-1]
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
            self.teacher_head = mlp(obs_dim, hidden, act_dim)
            self.teacher_head.requires_grad_(False)
        else:
            self.head = mlp(feat, (cfg.hidden,), act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), -1.0))

    @property
    def egomap(self) -> EgoMap | None:
        """``memory=map``: the map the memory keeps (else None)."""
        return getattr(self.memory, "egomap", None)

    @property
    def geokp(self) -> GeoKeypoints | None:
        """``memory=geometric``: geometry's estimator (else None)."""
        return getattr(self.memory, "geokp", None)

    # -- per-frame features ------------------------------------------------------------------------
    @property
    def image_groups(self) -> tuple[str, ...]:
        """The observation groups the student's image is made of (``gather_image``)."""
        return (self.image_group, "segmentation") if self.seg_classes else (self.image_group,)

    def gather_image(self, group: Callable[[str], torch.Tensor]) -> torch.Tensor:
        """The student's image from ``group(name)`` -> that observation group ``[.., C, H, W]``:
        the image group, and with ``segmentation`` its class ids as one more channel (uint8)."""
        if not self.seg_classes:
            return group(self.image_group)
        return torch.cat([group(g) for g in self.image_groups], -3)

    def image_input(self, img: torch.Tensor) -> torch.Tensor:
        if self.image_group == "camera":
            rgb = img[..., :3, :, :].float() / 255.0
            if not self.seg_classes:
                return rgb
            ids = img[..., 3, :, :].long().clamp(0, self.seg_classes - 1)
            onehot = torch.nn.functional.one_hot(ids, self.seg_classes).movedim(-1, -3).float()
            return torch.cat((rgb, onehot), -3)
        return (img.float() / self.cfg.depth_scale).clamp(0, 2)

    def role_embeddings(self, img: torch.Tensor) -> torch.Tensor:
        """``depth_layers`` ``[N, R, H, W]`` -> one embedding per role ``[N, R, embed]``."""
        N, R = img.shape[:2]
        return self.encoder(self.image_input(img).reshape(N * R, 1, *img.shape[2:])).view(N, R, -1)

    def frame_features(
        self, img: torch.Tensor, proprio: torch.Tensor, inputs: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images ``[N, C, H, W]`` and proprio ``[N, P]`` (and the memory's per-frame ``inputs``, e.g.
        a map window or geometry's estimate; see ``Memory.extras``) -> features ``[N, F]`` and, for
        ``depth_layers``, the role embeddings ``[N, R, embed]``."""
        if self.roles:
            roles = self.role_embeddings(img)
            emb = roles.flatten(1)
        else:
            roles, emb = None, self.encoder(self.image_input(img))
        parts = [emb, self.proprio_norm(proprio.float()), *self.memory.extras(img, inputs or {})]
        return torch.cat(parts, -1), roles

    # -- sequences (training) ----------------------------------------------------------------------
    def forward(
        self,
        img: torch.Tensor,
        proprio: torch.Tensor,
        first: torch.Tensor,
        h0: torch.Tensor | None = None,
        egomap: torch.Tensor | None = None,
        geokp: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sequences ``img`` ``[B, T, C, H, W]``, ``proprio`` ``[B, T, P]``, ``first`` ``[B, T]``
        (episode starts; the memory starts empty at step 0 as well) -> action means ``[B, T, A]``
        and role embeddings ``[B, T, R, embed]`` (None for RGB). ``memory=gru`` only: ``h0``
        ``[B, hidden]``, the state the sequence starts from (as ``step`` received it), instead of
        an empty memory: training on stored states reaches further back than the sequence.
        ``memory=map`` only: ``egomap`` ``[B, T, C, cells, cells]``, the map window ``step`` read at
        each step (the map has no learnt parameters, so stored windows are all it needs);
        ``memory=geometric`` only: ``geokp`` ``[B, T, obs_dim]``, geometry's estimate at each step."""
        given = {"h0": h0, "egomap": egomap, "geokp": geokp}
        h, roles = self.features(img, proprio, first, {k: v for k, v in given.items() if v is not None})
        return self.action_mean(h), roles

    def action_mean(self, h: torch.Tensor) -> torch.Tensor:
        """Features ``[..., feat_dim]`` (from ``features`` or ``step``'s memory) -> action means."""
        if self.teacher_dims is not None:
            return torch.tanh(self.teacher_head(self.estimate(h)))
        return torch.tanh(self.head(h))

    def estimate(self, h: torch.Tensor) -> torch.Tensor:
        """``head=teacher``: features -> the estimate of the teacher's normalised observation (the
        head's, added to the memory's prior where it has one: geometry's estimate)."""
        if self.teacher_dims is None:
            raise ValueError("only a head 'teacher' student estimates the teacher's observation")
        prior = self.memory.estimate_prior(h)
        return self.head(h) if prior is None else prior + self.head(h)

    @torch.no_grad()
    def load_teacher_head(self, teacher: nn.Module) -> None:
        """Copy the teacher's network (``GaussianActor.net``, which reads its normalised
        observation) into the frozen ``teacher_head`` (and, for a geometric memory, its normaliser)."""
        if self.teacher_dims is None:
            raise ValueError("only a head 'teacher' student has a teacher head")
        self.teacher_head.load_state_dict(teacher.net.state_dict())
        norm = getattr(self.memory, "teacher_norm", None)
        if norm is not None:
            norm.load_state_dict(teacher.norm.state_dict())

    def features(
        self,
        img: torch.Tensor,
        proprio: torch.Tensor,
        first: torch.Tensor,
        inputs: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As ``forward``, but the features the action head reads ``[B, T, feat_dim]`` (after the
        memory) in place of the action means; ``inputs``: the memory's training inputs
        (``Memory.training_inputs``: ``h0`` ``[B, hidden]``, or per-step ``egomap`` / ``geokp``
        ``[B, T, ...]``)."""
        inputs = inputs or {}
        B, T = img.shape[:2]
        per_frame = {k: v.flatten(0, 1) for k, v in inputs.items() if k != "h0"}
        f, roles = self.frame_features(img.flatten(0, 1), proprio.flatten(0, 1), per_frame)
        first = first.clone()
        if "h0" not in inputs:
            first[:, 0] = True
        h = self.memory.sequence(f.view(B, T, -1), first, inputs)
        return h, None if roles is None else roles.view(B, T, *roles.shape[1:])

    # -- one step at a time (acting) ---------------------------------------------------------------
    def init_state(self, batch: int, device: torch.device | str = "cpu") -> Any:
        return self.memory.init_state(batch, device)

    @torch.no_grad()
    def step(
        self, img: torch.Tensor, proprio: torch.Tensor, state: Any, first: torch.Tensor
    ) -> tuple[torch.Tensor, Any]:
        """One frame per row: ``img`` ``[N, C, H, W]``, ``proprio`` ``[N, P]``, ``first`` ``[N]``
        (rows whose episode starts now) -> action means ``[N, A]`` and the new state."""
        state, inputs = self.memory.observe(img, proprio, state, first)
        f, _ = self.frame_features(img, proprio, inputs)
        h, state = self.memory.step(f, state, first)
        return self.action_mean(h), state

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self, path: str | Path, env_name: str, env_config: dict[str, Any], **extra: Any) -> Path:
        meta = {
            "kind": "student",
            "env": env_name,
            "env_config": env_config,
            "image_group": self.image_group,
            "image_shape": list(self.image_shape),
            "proprio_dim": self.proprio_dim,
            "act_dim": self.act_dim,
            "student": dataclasses.asdict(self.cfg),
            "student_format": STUDENT_FORMAT,
            **({"egomap_geometry": self.geometry} if self.geometry is not None else {}),
            **({"segmentation_classes": self.seg_classes} if self.seg_classes else {}),
            **({"teacher_dims": [self.teacher_dims[0], list(self.teacher_dims[1])]} if self.teacher_dims else {}),
            **extra,
        }
        return checkpoint.save(path, self.state_dict(), meta)

    @classmethod
    def load(cls, path: str | Path) -> tuple[Student, dict[str, Any]]:
        tensors, meta = checkpoint.load(path, "student")
        checkpoint.check_meta(meta, path, STUDENT_SCHEMA)
        try:
            cfg = student_config(meta["student"])
        except (TypeError, ValueError) as err:
            raise checkpoint.CheckpointError(f"{path}: its student settings are not valid: {err}") from None
        student = cls(
            meta["image_group"],
            tuple(meta["image_shape"]),
            meta["proprio_dim"],
            meta["act_dim"],
            cfg,
            meta.get("egomap_geometry"),
            meta.get("segmentation_classes", 0),
            meta.get("teacher_dims"),
        )
        if meta.get("student_format", 1) < STUDENT_FORMAT:  # saved before each memory was a module of its own
            tensors = student.memory.legacy_keys("memory.", tensors)
        checkpoint.fill(student, tensors, path)
        return student, meta


class StudentPolicy:
    """A student as a batched-env policy: ``obs`` groups ``[W, K, ...]`` -> actions ``[W, K, A]``,
    keeping a memory per (world, agent) that ``episode_done(mask [W])`` clears."""

    def __init__(self, student: Student) -> None:
        self.student = student.eval()
        self.state: Any = None
        self.first: torch.Tensor | None = None

    def episode_done(self, done: torch.Tensor) -> None:
        """Worlds ``done`` ``[W]`` (bool) start a new episode at the next call."""
        if self.first is not None:
            K = self.first.numel() // done.numel()
            self.first |= done.to(self.first.device).repeat_interleave(K)

    @torch.no_grad()
    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        s = self.student
        img, prop = s.gather_image(obs.__getitem__), obs["proprio"]
        W, K = img.shape[:2]
        N = W * K
        dev = img.device
        if self.state is None or self.first is None or self.first.numel() != N:
            self.state = s.init_state(N, dev)
            self.first = torch.ones(N, dtype=torch.bool, device=dev)
        mean, self.state = s.step(img.reshape(N, *img.shape[2:]), prop.reshape(N, -1), self.state, self.first)
        self.first = torch.zeros_like(self.first)
        return mean.view(W, K, -1)


def load_student_policy(path: Path, env: Any) -> StudentPolicy:
    """A vision student from its checkpoint (kind ``student``), checked against ``env``'s name and cameras."""
    student, meta = Student.load(path)
    checkpoint.check_env(meta, path, env)
    space = env.observation_spaces.get(student.image_group)
    missing = [g for g in student.image_groups if g not in env.observation_spaces]
    if space is None or tuple(space.shape) != student.image_shape or missing:
        got = None if space is None else tuple(space.shape)
        raise checkpoint.CheckpointError(
            f"{path} is a student reading {' + '.join(student.image_groups)} {student.image_shape}; this env "
            f"gives {student.image_group!r} {got}{f' and no {missing}' if missing else ''} "
            "(make the env with the checkpoint's cameras, as eval.py --checkpoint does)"
        )
    return StudentPolicy(student.to(env.device))
