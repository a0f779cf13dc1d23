"""Drawing run logs: `inputs` loads runs and their marks, `figure` draws them with
matplotlib (Agg, no pyplot), `terminal` with plotext for ssh sessions, `watch` redraws
while a run trains. Nothing here imports TensorFlow; matplotlib and plotext are imported
only by the module that draws with them."""
