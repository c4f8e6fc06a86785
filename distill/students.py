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
from distill.egopush.geometry import GeoKeypoints, GeoState
from distill.egopush.odometry_map import EgoMap, MapState
from distill.encoders import ConvEncoder, moments_of
from distill.kv_cache import CausalTransformer, KVCache
from distill.student_config import IMAGE_GROUPS, StudentConfig, student_config

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
        frame = cfg.embed * max(1, self.roles) + proprio_dim
        self.geometry, self.egomap = geometry, None
        if cfg.memory == "map":
            if not self.roles:
                raise ValueError("memory 'map' needs role-layered depth images (depth_layers), not RGB")
            if geometry is None:
                raise ValueError("memory 'map' needs the robot's camera geometry (EgoPushEnv.camera_geometry())")
            gate_role = 1 if cfg.map_gate > 0 else None
            self.egomap = EgoMap(
                geometry,
                (H, W),
                C,
                cfg.map_cells,
                cfg.map_cell,
                cfg.map_tau,
                gate_role=gate_role,
                gate=cfg.map_gate or 0.3,
            )
            self.map_encoder = ConvEncoder(self.egomap.channels, (cfg.map_cells, cfg.map_cells), cfg.embed)
            frame += cfg.embed
            if cfg.map_moments:
                frame += 6 * C + 12 * self.egomap.channels
        self.geokp: GeoKeypoints | None = None
        if cfg.memory == "geometric":
            if not self.roles or geometry is None:
                raise ValueError(
                    "memory 'geometric' needs role-layered depth images (depth_layers) and the robot's and task's "
                    "geometry (EgoPushEnv.keypoint_geometry())"
                )
            self.geokp = GeoKeypoints(geometry, (H, W), centres=cfg.geo_centres, labels=cfg.geo_labels)
            if cfg.head != "teacher" or teacher_dims is None or int(teacher_dims[0]) != self.geokp.obs_dim:
                raise ValueError(
                    "memory 'geometric' estimates an EgoPush teacher's observation: it needs head 'teacher' and a "
                    f"teacher reading {self.geokp.obs_dim} inputs, got head {cfg.head!r}, teacher dims {teacher_dims}"
                )
            frame += self.geokp.obs_dim
            self.teacher_norm = RunningNorm(self.geokp.obs_dim)  # the teacher's, copied in (load_teacher_head)
        if cfg.memory in ("none", "map", "geometric"):
            self.memory: nn.Module | None = None
            feat = frame * cfg.frame_stack
        elif cfg.memory == "gru":
            self.memory = nn.GRU(frame, cfg.hidden, batch_first=True)
            feat = cfg.hidden
        else:  # transformer
            self.inp = nn.Linear(frame, cfg.hidden)
            self.memory = CausalTransformer(cfg.hidden, cfg.layers, cfg.heads, cfg.window)
            feat = cfg.hidden
        self.feat_dim = feat
        self.teacher_dims = None
        if cfg.head == "teacher":
            if teacher_dims is None:
                raise ValueError("head 'teacher' needs the teacher's observation size and hidden layers (teacher_dims)")
            obs_dim, hidden = int(teacher_dims[0]), tuple(int(h) for h in teacher_dims[1])
            self.teacher_dims = (obs_dim, hidden)
            self.head = mlp(feat, (2 * cfg.hidden, 2 * cfg.hidden), obs_dim)  # the estimate
            if self.geokp is not None:  # a correction to geometry's estimate: none at first
                last = [m for m in self.head.modules() if isinstance(m, nn.Linear)][-1]
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
            self.teacher_head = mlp(obs_dim, hidden, act_dim)
            self.teacher_head.requires_grad_(False)
        else:
            self.head = mlp(feat, (cfg.hidden,), act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), -1.0))

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
        self,
        img: torch.Tensor,
        proprio: torch.Tensor,
        egomap: torch.Tensor | None = None,
        geokp: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images ``[N, C, H, W]`` and proprio ``[N, P]`` (and, ``memory=map``, the map window
        ``[N, C, cells, cells]``; ``memory=geometric``, geometry's estimate of the teacher's
        observation ``[N, obs_dim]``, which goes last, normalised as the teacher's) -> features
        ``[N, F]`` and, for ``depth_layers``, the role embeddings ``[N, R, embed]``."""
        if self.roles:
            roles = self.role_embeddings(img)
            emb = roles.flatten(1)
        else:
            roles, emb = None, self.encoder(self.image_input(img))
        parts = [emb, self.proprio_norm(proprio.float())]
        if self.egomap is not None:
            if egomap is None:
                raise ValueError("a memory 'map' student needs the map window of each step (egomap)")
            parts.append(self.map_encoder(egomap.float()))
            if self.cfg.map_moments:
                parts.append(self.moments(img, egomap))
        if self.geokp is not None:
            if geokp is None:
                raise ValueError("a memory 'geometric' student needs geometry's estimate of each step (geokp)")
            parts.append(self.teacher_norm(geokp.float()).clamp(-5, 5))
        return torch.cat(parts, -1), roles

    def moments(self, img: torch.Tensor, egomap: torch.Tensor) -> torch.Tensor:
        """``map_moments``: per role of the depth image ``[N, R, H, W]`` (m) the moments of its pixels
        lifted to the floor plan, then per channel of the map window ``[N, C, cells, cells]`` the
        moments of its marks, plain and weighted by ``mark ** 8`` (fresh ones) -> ``[N, 6R + 12C]``."""
        assert self.egomap is not None
        em, dev = self.egomap, img.device
        z = img.float().flatten(2)  # [N, R, H*W]: pixel p lies at cam_xy + z * ray[p] (robot frame)
        marks = egomap.float().flatten(2)  # [N, C, cells^2]: mark p at window_xy[p]
        cam, ray, cells = em.cam_xy.to(dev), em.ray.to(dev), em.window_xy.to(dev)
        none = torch.zeros(2, device=dev)
        return torch.cat(
            (
                moments_of((z > 0).float(), z, cam, ray),
                moments_of(marks, 1.0, none, cells),
                moments_of(marks**8, 1.0, none, cells),
            ),
            -1,
        )

    def _stack(self, f: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Frame stack over a sequence ``[B, T, F]``: each step concatenates itself and the
        ``frame_stack - 1`` previous frames, repeating the episode's first frame before it starts."""
        k = self.cfg.frame_stack
        if k == 1:
            return f
        B, T, _ = f.shape
        t = torch.arange(T, device=f.device)
        start = torch.cummax(torch.where(first, t, 0), 1).values  # [B, T] first step of the episode
        cols = [torch.maximum(t[None] - i, start) for i in range(k)]  # [B, T] each
        return torch.cat([f.gather(1, c[..., None].expand(-1, -1, f.shape[-1])) for c in cols], -1)

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
        h, roles = self.features(img, proprio, first, h0, egomap, geokp)
        return self.action_mean(h), roles

    def action_mean(self, h: torch.Tensor) -> torch.Tensor:
        """Features ``[..., feat_dim]`` (from ``features`` or ``step``'s memory) -> action means."""
        if self.teacher_dims is not None:
            return torch.tanh(self.teacher_head(self.estimate(h)))
        return torch.tanh(self.head(h))

    def estimate(self, h: torch.Tensor) -> torch.Tensor:
        """``head=teacher``: features -> the estimate of the teacher's normalised observation
        (``memory=geometric``: geometry's, the features' last part, plus the head's correction)."""
        if self.teacher_dims is None:
            raise ValueError("only a head 'teacher' student estimates the teacher's observation")
        if self.geokp is not None:
            return h[..., -self.geokp.obs_dim :] + self.head(h)
        return self.head(h)

    @torch.no_grad()
    def load_teacher_head(self, teacher: nn.Module) -> None:
        """Copy the teacher's network (``GaussianActor.net``, which reads its normalised
        observation) into the frozen ``teacher_head``."""
        if self.teacher_dims is None:
            raise ValueError("only a head 'teacher' student has a teacher head")
        self.teacher_head.load_state_dict(teacher.net.state_dict())
        if self.geokp is not None:
            self.teacher_norm.load_state_dict(teacher.norm.state_dict())

    def features(
        self,
        img: torch.Tensor,
        proprio: torch.Tensor,
        first: torch.Tensor,
        h0: torch.Tensor | None = None,
        egomap: torch.Tensor | None = None,
        geokp: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As ``forward``, but the features the action head reads ``[B, T, feat_dim]`` (after the
        memory) in place of the action means."""
        B, T = img.shape[:2]
        maps = None if egomap is None else egomap.flatten(0, 1)
        geo = None if geokp is None else geokp.flatten(0, 1)
        f, roles = self.frame_features(img.flatten(0, 1), proprio.flatten(0, 1), maps, geo)
        f = f.view(B, T, -1)
        first = first.clone()
        if h0 is None or self.cfg.memory != "gru":
            first[:, 0] = True
        if self.cfg.memory == "none":
            h = self._stack(f, first)
        elif self.cfg.memory in ("map", "geometric"):
            h = f
        elif self.cfg.memory == "gru":
            hx = torch.zeros(1, B, self.cfg.hidden, device=f.device) if h0 is None else h0[None].to(f)
            outs = []
            for t in range(T):  # the state is cut at episode starts
                hx = hx * (~first[:, t]).float()[None, :, None]
                o, hx = self.memory(f[:, t : t + 1], hx)
                outs.append(o)
            h = torch.cat(outs, 1)
        else:
            h = self.memory(self.inp(f), first)
        return h, None if roles is None else roles.view(B, T, *roles.shape[1:])

    # -- one step at a time (acting) ---------------------------------------------------------------
    def init_state(self, batch: int, device: torch.device | str = "cpu") -> Any:
        if self.cfg.memory == "gru":
            return torch.zeros(1, batch, self.cfg.hidden, device=device)
        if self.cfg.memory == "transformer":
            return self.memory.new_cache(batch, device)
        if self.egomap is not None:
            return self.egomap.init_state(batch, device)
        if self.geokp is not None:
            return self.geokp.init_state(batch, device)
        return torch.zeros(batch, max(0, self.cfg.frame_stack - 1), 0, device=device)  # filled on first use

    @torch.no_grad()
    def step(
        self, img: torch.Tensor, proprio: torch.Tensor, state: Any, first: torch.Tensor
    ) -> tuple[torch.Tensor, Any]:
        """One frame per row: ``img`` ``[N, C, H, W]``, ``proprio`` ``[N, P]``, ``first`` ``[N]``
        (rows whose episode starts now) -> action means ``[N, A]`` and the new state."""
        if self.egomap is not None:
            assert isinstance(state, MapState)
            state = self.egomap.step(img.float(), proprio, state, first)
            f, _ = self.frame_features(img, proprio, state.view)
            return self.action_mean(f), state
        if self.geokp is not None:
            assert isinstance(state, GeoState)
            state = self.geokp.step(img.float(), proprio, state, first)
            f, _ = self.frame_features(img, proprio, geokp=state.out)
            return self.action_mean(f), state
        f, _ = self.frame_features(img, proprio)
        if self.cfg.memory == "gru":
            state = state * (~first).float()[None, :, None]
            o, state = self.memory(f[:, None], state)
            h = o[:, 0]
        elif self.cfg.memory == "transformer":
            assert isinstance(state, KVCache)
            h = self.memory.step(self.inp(f), state, first)
        else:
            k = self.cfg.frame_stack
            if k > 1:
                if state.shape[-1] == 0:  # first use: every row starts an episode
                    state = f[:, None].expand(-1, k - 1, -1).clone()
                state = torch.where(first[:, None, None], f[:, None].expand_as(state), state)
                h = torch.cat((f, state.flip(1).flatten(1)), -1)
                state = torch.cat((state[:, 1:], f[:, None]), 1)
            else:
                h = f
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
            **({"egomap_geometry": self.geometry} if self.geometry is not None else {}),
            **({"segmentation_classes": self.seg_classes} if self.seg_classes else {}),
            **({"teacher_dims": [self.teacher_dims[0], list(self.teacher_dims[1])]} if self.teacher_dims else {}),
            **extra,
        }
        return checkpoint.save(path, self.state_dict(), meta)

    @classmethod
    def load(cls, path: str | Path) -> tuple[Student, dict[str, Any]]:
        tensors, meta = checkpoint.load(path, "student")
        cfg = student_config(meta["student"])
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
    name = getattr(env, "name", None)
    if meta["env"] != name:
        raise checkpoint.CheckpointError(f"{path} was trained on {meta['env']!r}, not {name!r}")
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
