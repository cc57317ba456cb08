"""Authors write books; members borrow them (loans)."""

from __future__ import annotations

from django.db import models


class Author(models.Model):
    """A writer; ``author.books`` is the reverse side of ``Book.author``."""

    name = models.CharField(max_length=100)
    country = models.CharField(max_length=60)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    """A title on the shelves."""

    title = models.CharField(max_length=200)
    # looked up by the loan reports; no index on purpose (see reports.most_borrowed)
    isbn = models.CharField(max_length=20)
    year = models.IntegerField()
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")

    def __str__(self) -> str:
        return self.title


class Member(models.Model):
    """A library card holder."""

    name = models.CharField(max_length=100)
    email = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name


class Loan(models.Model):
    """A book borrowed by a member; ``returned_on`` is empty while it is out."""

    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="loans")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="loans")
    # a copy of the book's ISBN as the circulation desk scanned it (no index)
    isbn = models.CharField(max_length=20)
    borrowed_on = models.DateField()
    returned_on = models.DateField(null=True, blank=True)
