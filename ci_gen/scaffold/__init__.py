"""`ci-gen init`: scaffold a project that uses the components.

- `plan`: the files init writes (the project's `.gitlab-ci.yml`, `.gitignore`, the example),
  computed in memory so a bad option or a conflict is found before anything is written;
- `gitrepo`: the git side (what init may touch; staging and committing only its own files);
- `example`: making a copied example runnable (training data, DVC remotes, first push);
- `project`: init from start to end, putting the directory back when a step fails.
"""
