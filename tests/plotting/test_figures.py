"""plotting.figures: the one save path of the report's figures."""


def test_save_refuses_panels_without_axis_labels(tmp_path):
    """Every reproduce figure goes through save: an unlabelled panel is an error (the
    report's figures are checked by the reproduce test that runs every topic)."""
    import pytest

    from bayeskit.plotting.figures import pyplot, save, unlabelled_axes

    plt = pyplot()
    fig, axes = plt.subplots(1, 2)
    axes[0].set_title("left")
    axes[0].set_xlabel("x")
    axes[1].set_xlabel("x")
    axes[1].set_ylabel("y")
    sc = axes[1].scatter([0, 1], [0, 1], c=[0, 1])
    fig.colorbar(sc, ax=axes[1], label="value")
    assert unlabelled_axes(fig) == ["left"]
    with pytest.raises(ValueError, match="left"):
        save(fig, tmp_path / "f.png")
    fig, ax = plt.subplots()
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.imshow([[0, 1]])
    fig.colorbar(ax.images[0], ax=ax)  # a colour bar without a label
    assert unlabelled_axes(fig) == ["panel 1"]
    ax.figure.axes[1].set_ylabel("density")
    assert save(fig, tmp_path / "g.png").exists()


def test_save_refuses_text_that_runs_off_the_figure(tmp_path):
    """The report once showed a clipped title (the adversarial-KL panel): save refuses it."""
    import pytest

    from bayeskit.plotting.figures import clipped_text, pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.set(xlabel="x", ylabel="y", title="a title far too long for a figure three inches wide")
    fig.tight_layout()
    assert clipped_text(fig) == ["a title far too long for a figure three inches wide"]
    with pytest.raises(ValueError, match="runs off the figure"):
        save(fig, tmp_path / "f.png")
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.set(xlabel="x", ylabel="y", title="short")
    fig.suptitle("a figure title")
    assert save(fig, tmp_path / "g.png").exists()
